package ami

import (
	"context"
	"fmt"
)

// Setvar is the Setvar action (write class call); encoded here, as goami would (TestEncodersMatchGoami).
// Channel "" sets a global variable. Variable may be a writable function
// such as DEVICE_STATE(Custom:DND1001) or PRESENCE_STATE(CustomPresence:1001).
// Dangerous functions (DB, SHELL, ...) are refused by Asterisk over AMI.
type Setvar struct {
	Channel, Variable, Value string
}

// ActionName implements [Action].
func (Setvar) ActionName() string { return "Setvar" }

// ActionHeaders implements [Action].
func (a Setvar) ActionHeaders() ([]Header, error) {
	if err := require("Setvar", "Variable", a.Variable); err != nil {
		return nil, err
	}
	if err := checkValues("Setvar", "Channel", a.Channel, "Variable", a.Variable, "Value", a.Value); err != nil {
		return nil, err
	}
	// goami writes all three, Channel and Value also when empty (a global, a deletion).
	return headers("Channel", a.Channel, "Variable", a.Variable, "Value", a.Value), nil
}

// Setvar sets a variable or function on channel ("" = global). An empty
// value deletes a global. An unknown channel gives "No such channel"; a
// value a function rejects gives "Variable not set".
func (c *Client) Setvar(ctx context.Context, channel, name, value string) error {
	if _, err := c.Do(ctx, Setvar{Channel: channel, Variable: name, Value: value}); err != nil {
		return fmt.Errorf("ami: setvar %s on %s: %w", name, channelOrGlobal(channel), err)
	}
	return nil
}

func channelOrGlobal(ch string) string {
	if ch == "" {
		return "globals"
	}
	return ch
}

// Getvar is the Getvar action (write class call or reporting); encoded here,
// as goami would (TestEncodersMatchGoami). Channel "" reads a global or a function without channel.
type Getvar struct {
	Channel, Variable string
}

// ActionName implements [Action].
func (Getvar) ActionName() string { return "Getvar" }

// ActionHeaders implements [Action].
func (a Getvar) ActionHeaders() ([]Header, error) {
	if err := require("Getvar", "Variable", a.Variable); err != nil {
		return nil, err
	}
	if err := checkValues("Getvar", "Channel", a.Channel, "Variable", a.Variable); err != nil {
		return nil, err
	}
	return headers("Channel", a.Channel, "Variable", a.Variable), nil
}

// Getvar reads a variable or function on channel ("" = global). A missing
// global reads as "" without error.
func (c *Client) Getvar(ctx context.Context, channel, name string) (string, error) {
	m, err := c.Do(ctx, Getvar{Channel: channel, Variable: name})
	if err != nil {
		return "", fmt.Errorf("ami: getvar %s on %s: %w", name, channelOrGlobal(channel), err)
	}
	return m.Get("Value"), nil
}
