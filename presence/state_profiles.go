package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PersonalProfiles returns the user's own profiles. Profiles that cannot be read are reported
// in the error (*CorruptErrors only) and left out.
func (s *StateStore) PersonalProfiles(ctx context.Context, id UserID) ([]*Profile, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	key := s.profilesKey(id)
	all, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		err = s.fail(err, "read profiles of "+string(id), key)
		s.unreadable.note(kindProfile, key, err)
		return nil, err
	}
	s.ok()
	ps, err := s.decodeProfiles(id, all)
	s.unreadable.note(kindProfile, key, err)
	return ps, err
}

// decodeProfiles reads the fields of a user's profiles hash, sorted; profiles that cannot be
// read are reported in the error and left out.
func (s *StateStore) decodeProfiles(id UserID, all map[string]string) ([]*Profile, error) {
	out := make([]*Profile, 0, len(all))
	var errs []error
	for pid, raw := range all {
		var p Profile
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			errs = append(errs, &CorruptError{Key: s.profilesKey(id), Field: pid, Err: err})
			continue
		}
		p.ID, p.Owner = pid, id
		migrateEnabled(&p)
		out = append(out, &p)
	}
	sortProfiles(out)
	return out, errors.Join(errs...)
}

// PersonalProfilesMany returns the own profiles of many users in one round trip. Profiles that
// cannot be read (a value that does not decode, a key of another type) are left out and
// reported: the error is then made only of *CorruptErrors. Any other error (the store
// unavailable) comes alone, with a nil map.
func (s *StateStore) PersonalProfilesMany(ctx context.Context, ids []UserID) (map[UserID][]*Profile, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { // each command is judged below
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.profilesKey(id))
		}
		return nil
	})
	out := make(map[UserID][]*Profile, len(ids))
	var errs []error
	for i, id := range ids {
		key := s.profilesKey(id)
		if err := cmds[i].Err(); err != nil {
			err = s.fail(err, "read profiles", key)
			if !corruptOnly(err) {
				return nil, err
			}
			s.unreadable.note(kindProfile, key, err)
			errs = append(errs, err)
			continue
		}
		all := cmds[i].Val()
		if len(all) == 0 {
			s.unreadable.note(kindProfile, key, nil)
			continue
		}
		ps, err := s.decodeProfiles(id, all)
		s.unreadable.note(kindProfile, key, err)
		if err != nil {
			errs = append(errs, err)
		}
		out[id] = ps
	}
	s.ok()
	return out, errors.Join(errs...)
}

// SavePersonalProfile writes (creates or replaces) one of the user's own profiles.
func (s *StateStore) SavePersonalProfile(ctx context.Context, id UserID, p *Profile) error {
	if err := s.EnsureSchema(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("presence: encode profile %s of %s: %w", p.ID, id, err)
	}
	key := s.profilesKey(id)
	op := fmt.Sprintf("save profile %s of %s", p.ID, id)
	if err := s.confirmed(ctx, op, func(c redis.Cmdable) error { return c.HSet(ctx, key, p.ID, string(b)).Err() }); err != nil {
		return s.fail(err, op, key)
	}
	s.ok()
	return nil
}

// DeletePersonalProfile removes one of the user's own profiles; false when there was none.
func (s *StateStore) DeletePersonalProfile(ctx context.Context, id UserID, pid string) (bool, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return false, err
	}
	key := s.profilesKey(id)
	var n int64
	err := s.confirmed(ctx, fmt.Sprintf("delete profile %s of %s", pid, id), func(c redis.Cmdable) (err error) {
		n, err = c.HDel(ctx, key, pid).Result()
		return err
	})
	if err != nil {
		return false, s.fail(err, fmt.Sprintf("delete profile %s of %s", pid, id), key)
	}
	s.ok()
	return n > 0, nil
}

// migrateEnabled reads the enabled key of profiles stored before it was replaced (Action's
// Enabled) as it was meant then: enabled: false kept the action without running it.
func migrateEnabled(p *Profile) {
	for _, chain := range [][]Action{p.OnEnter, p.OnExit} {
		for i := range chain {
			if a := &chain[i]; a.Enabled != nil {
				a.Disabled = a.Disabled || !*a.Enabled
				a.Enabled = nil
			}
		}
	}
}
