package leader

// Fence is what a leader's write carries to prove it is still the current term's: a store that
// writes under it (presence.StateStore) refuses the write unless the lease key still holds
// Value, checked in the same atomic script that writes. Value names the instance and the epoch,
// so a fence is refused from the moment the lease expired or was released, even before another
// instance took it; and once taken, the new term's value carries a higher epoch. Get it from
// Elector.Fence.
type Fence struct {
	// Key is the lease key.
	Key string
	// Value is what the lease key holds during the term: "<instance> <epoch>".
	Value string
	// Epoch is the term's fencing token (also in Value).
	Epoch int64
}
