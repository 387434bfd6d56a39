package graph

//go:generate go tool gqlgen generate

// Resolver is the root resolver. It holds one service per capability; each
// resolver parses its input, calls one service method and maps the result.
type Resolver struct{}
