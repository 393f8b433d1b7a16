package leader

// Key is the lease key in Redis, for the external tests.
func (e *Elector) Key() string { return e.key }
