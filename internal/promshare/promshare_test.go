package promshare

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterShares(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	first, err := Register(reg, prometheus.NewCounterVec(opts, []string{"kind"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounterVec(opts, []string{"kind"}))
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("the second registration did not return the collector already registered")
	}
	// The same name with other labels is a conflict, not a share.
	if _, err := Register(reg, prometheus.NewCounterVec(opts, []string{"other"})); err == nil {
		t.Error("a collector of another description was accepted")
	}
	// The same name as a counter without labels: refused, not shared.
	if _, err := Register(reg, prometheus.NewCounter(opts)); err == nil {
		t.Error("a collector of another type was returned as shared")
	}
}
