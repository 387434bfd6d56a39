package stripehook

// Test hooks: a small batch keeps a many-batch prune fast, and a short
// interval lets a test see the pruner's later runs.
var (
	PruneInBatches = prune
	RunPrunerEvery = runPruner
)
