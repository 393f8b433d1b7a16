package ari

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Ping checks that Asterisk's REST interface answers (GET /asterisk/ping).
func (c *Client) Ping(ctx context.Context) error {
	if err := c.do(ctx, opPing, http.MethodGet, "/asterisk/ping", nil, nil); err != nil {
		return fmt.Errorf("ari: ping: %w", err)
	}
	return nil
}

// Application returns our Stasis application as Asterisk sees it: the
// channels in it and its subscriptions.
func (c *Client) Application(ctx context.Context) (ApplicationData, error) {
	var a ApplicationData
	if err := c.do(ctx, opGetApplication, http.MethodGet, "/applications/"+seg(c.cfg.appName), nil, &a); err != nil {
		return ApplicationData{}, fmt.Errorf("ari: get application %s: %w", c.cfg.appName, err)
	}
	return a, nil
}

// SubscribeDevice subscribes our application to a device's state, e.g.
// "Custom:DND1001" or "Stasis:agent-42", so that DeviceStateChanged events
// for it arrive on Events.
//
// The subscription is remembered and restored on every (re)connect
// (Asterisk forgets it when it restarts), also when applying it now fails
// for lack of a connection; it is forgotten when Asterisk refuses it (a
// *RequestError with a 4xx status) or by UnsubscribeDevice. While not
// connected it is only remembered and nil is returned.
func (c *Client) SubscribeDevice(ctx context.Context, device string) error {
	if device == "" {
		return fmt.Errorf("ari: subscribe device: empty device name")
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.devices[device] = struct{}{}
	if !c.Status().Connected {
		return nil
	}
	err := c.subscribe(ctx, device)
	var re *RequestError
	if errors.As(err, &re) && re.StatusCode < 500 {
		delete(c.devices, device)
	}
	return err
}

// UnsubscribeDevice forgets a subscription made with SubscribeDevice and,
// if connected, removes it from Asterisk.
func (c *Client) UnsubscribeDevice(ctx context.Context, device string) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	delete(c.devices, device)
	if !c.Status().Connected {
		return nil
	}
	q := url.Values{"eventSource": {"deviceState:" + device}}
	if err := c.do(ctx, opUnsubscribe, http.MethodDelete, "/applications/"+seg(c.cfg.appName)+"/subscription", q, nil); err != nil {
		return fmt.Errorf("ari: unsubscribe %s from device %s: %w", c.cfg.appName, device, err)
	}
	return nil
}

// subscribe applies one device subscription; the caller holds subMu.
func (c *Client) subscribe(ctx context.Context, device string) error {
	q := url.Values{"eventSource": {"deviceState:" + device}}
	if err := c.do(ctx, opSubscribe, http.MethodPost, "/applications/"+seg(c.cfg.appName)+"/subscription", q, nil); err != nil {
		return fmt.Errorf("ari: subscribe %s to device %s: %w", c.cfg.appName, device, err)
	}
	return nil
}

// SetDeviceState sets the state (e.g. "INUSE", "NOT_INUSE") of a device
// owned by ARI. Asterisk only accepts names with the "Stasis:" prefix; use
// `hint => Stasis:name` to show it on BLF keys.
func (c *Client) SetDeviceState(ctx context.Context, device, state string) error {
	q := url.Values{"deviceState": {state}}
	if err := c.do(ctx, opSetDeviceState, http.MethodPut, "/deviceStates/"+seg(device), q, nil); err != nil {
		return fmt.Errorf("ari: set device state %s to %s: %w", device, state, err)
	}
	return nil
}

// GetGlobalVar reads a global dialplan variable; "" if it is not set.
func (c *Client) GetGlobalVar(ctx context.Context, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	q := url.Values{"variable": {name}}
	if err := c.do(ctx, opGetGlobalVar, http.MethodGet, "/asterisk/variable", q, &v); err != nil {
		return "", fmt.Errorf("ari: get global variable %s: %w", name, err)
	}
	return v.Value, nil
}

// SetGlobalVar sets a global dialplan variable (not persistent: Asterisk
// forgets it on restart); an empty value deletes it.
func (c *Client) SetGlobalVar(ctx context.Context, name, value string) error {
	q := url.Values{"variable": {name}, "value": {value}}
	if err := c.do(ctx, opSetGlobalVar, http.MethodPost, "/asterisk/variable", q, nil); err != nil {
		return fmt.Errorf("ari: set global variable %s: %w", name, err)
	}
	return nil
}

// userEvent sends a user event with no source to our application.
func (c *Client) userEvent(ctx context.Context, name string) error {
	q := url.Values{"application": {c.cfg.appName}}
	if err := c.do(ctx, opUserEvent, http.MethodPost, "/events/user/"+seg(name), q, nil); err != nil {
		return fmt.Errorf("ari: send user event %s: %w", name, err)
	}
	return nil
}
