package billing

// PruneCheckoutsInBatches is PruneCheckouts with batches of batch rows.
var PruneCheckoutsInBatches = pruneCheckouts
