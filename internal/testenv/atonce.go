package testenv

import "sync"

// AtOnce runs fn on n goroutines released together, as concurrent callers
// arriving at the same moment, and returns when all have returned.
func AtOnce(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
