package graph

// FragmentBomb lets the HTTP tests send the document the unit tests measure.
var FragmentBomb = fragmentBomb
