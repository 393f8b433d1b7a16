package presence

import "maps"

// adopt records in adopted the PBX's value of what op would change, so that the desired state
// accepts it.
func adopt(adopted *Target, op Op, have *Target) {
	switch op.Kind {
	case OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty:
		var m *QueueMember
		if h := have.Queues[op.Queue]; h != nil {
			c := *h
			m = &c
		}
		adopted.Queues[op.Queue] = m
	case OpDBPut, OpDBDel:
		adopted.AstDB[op.Key] = have.AstDB[op.Key]
	case OpDeviceState:
		adopted.Devices[op.Key] = have.Devices[op.Key]
	case OpPresence:
		adopted.Presence[op.Key] = have.Presence[op.Key]
	case OpGlobal:
		adopted.Globals[op.Key] = have.Globals[op.Key]
	}
}

// overlayInto copies every entry of src into dst.
func overlayInto(dst, src *Target) {
	maps.Copy(dst.Queues, src.Queues)
	maps.Copy(dst.AstDB, src.AstDB)
	maps.Copy(dst.Devices, src.Devices)
	maps.Copy(dst.Presence, src.Presence)
	maps.Copy(dst.Globals, src.Globals)
}

// overlay replaces in want what adopted names: the PBX values the user's desired state
// accepted under the adopt policy.
func overlay(want, adopted *Target) {
	if adopted == nil {
		return
	}
	for q, m := range adopted.Queues {
		if _, ok := want.Queues[q]; ok {
			want.Queues[q] = m
		}
	}
	for k, v := range adopted.AstDB {
		if _, ok := want.AstDB[k]; ok {
			want.AstDB[k] = v
		}
	}
	for k, v := range adopted.Devices {
		if _, ok := want.Devices[k]; ok {
			want.Devices[k] = v
		}
	}
	for k, v := range adopted.Presence {
		if _, ok := want.Presence[k]; ok && v != nil {
			want.Presence[k] = v
		}
	}
	for k, v := range adopted.Globals {
		if _, ok := want.Globals[k]; ok {
			want.Globals[k] = v
		}
	}
}
