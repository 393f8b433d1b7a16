package lab

import (
	"context"
	"errors"
	"fmt"
)

// CopyToAsterisk writes data to the file path (mode 0644) in the lab Asterisk container,
// creating or replacing it: for files too large for a command line, such as a prepared astdb.
// The directory must exist (Exec "mkdir -p").
func (e *Env) CopyToAsterisk(ctx context.Context, data []byte, path string) error {
	if e.asterisk == nil {
		return errors.New("lab: asterisk is not running")
	}
	if err := e.asterisk.CopyToContainer(ctx, data, path, 0o644); err != nil {
		return fmt.Errorf("lab: copy %d bytes to %s: %w", len(data), path, err)
	}
	return nil
}
