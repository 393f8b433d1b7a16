package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig feeds arbitrary YAML to the configuration loader: whatever it is, loading
// does not panic, an error is one line naming what was wrong, and a configuration it accepts
// validates again unchanged.
func FuzzLoadConfig(f *testing.F) {
	for _, seed := range []string{
		"", "{}", "[]", "users: 5", "reconcile: {interval: 300}", "reconcile: {interval: 10s}",
		"triggers: {tick: 1ns}", "api: {max_body_bytes: -1}", "users: [{id: a, extension: '1', devices: [{dial: PJSIP/1, family: desk}]}]",
		"users: [{id: a, extension: '1', devices: [{dial: PJSIP/1, family: desk}], queues: [{name: q, penalty: 99999999999}]}]",
		"profiles: [{id: x, on_enter: [{action: variable, scope: global, name: PRESENCED_APP, value: x}]}]",
		"personal_profiles: {variables: ['PROFILE/{ext}/*'], lamps: ['Custom:DND{ext}']}",
		"personal_profiles: {allowed_actions: [webhook]}", "limits: {actions: 100000}", "hot_desks: [nope]",
		"asterisk: {naming: {dnd_family: '%'}}", "holidays: [2026-13-40]", "log: {level: loud}", "\t\x00",
		"users:\n  - id: alice\n    extension: \"1001\"\n    devices: [{dial: PJSIP/1001, family: desk}]\n    caller_ids: ['*55']\n",
		// Block lists, which the loader cuts into items (config_file.go).
		"users:\n  # team\n  - id: a\n    extension: \"1\"\n    devices:\n      - {dial: PJSIP/1, family: desk}\n  - id: b\n bad: 1\n",
		"profiles:\n- id: x\n  on_enter:\n  - {action: dnd}\n- &p {id: y}\n- *p\nlog: {level: info}\n", "schedules:\n  -\n  - {name: s, at: '08:00', profile: available}\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	environ := []string{"PRESENCED_ASTERISK_AMI_SECRET=s", "PRESENCED_ASTERISK_ARI_PASSWORD=p", "PRESENCED_INSTANCE_ID=fuzz"}
	f.Fuzz(func(t *testing.T, yaml []byte) {
		path := filepath.Join(dir, "presenced.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := loadConfig([]string{"-config", path}, environ, io.Discard)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("config %q: error %q is not one line", yaml, msg)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("config %q loaded, then fails validation: %v", yaml, err)
		}
	})
}
