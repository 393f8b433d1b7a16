package webhook

import (
	"net/url"
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", DefaultTimeout, false},
		{"250ms", 250 * time.Millisecond, false},
		{"1m", time.Minute, false},
		{"5m", MaxTimeout, false},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"2", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		got, err := parseTimeout(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.example.com/presence", "https://hooks.example.com/presence"},
		{"https://u:pw@hooks.example.com/p?token=x#f", "https://hooks.example.com/p"},
		{"http://127.0.0.1:8080/?", "http://127.0.0.1:8080/"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := display(u); got != tt.want {
			t.Errorf("display(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	long := make([]byte, 500)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct{ in, want string }{
		{"", ""},
		{"  \n", ""},
		{"down\n", `: "down"`},
		{"bad \xff byte", `: "bad ? byte"`},
		{string(long), `: "` + string(long[:maxQuoted]) + `..."`},
	}
	for _, tt := range tests {
		if got := quote([]byte(tt.in)); got != tt.want {
			t.Errorf("quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
