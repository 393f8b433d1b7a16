package calendar

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/presenced/presenced/presence"
)

// DefaultRules are the system-wide rules when the configuration names none: Infinity's
// trigger words ("m:" a meeting, "h:" a holiday) and Exchange's out-of-office all-day events.
// Profiles a catalog lacks are left out (DefaultRulesFor).
var defaultRules = []presence.CalendarRule{
	{TitlePrefix: "m:", Profile: "meeting"},
	{TitlePrefix: "h:", Profile: "holiday"},
	{ShowAs: string(ShowOOF), Profile: "holiday", Priority: 10},
	{TitleContains: "out of office", AllDay: new(true), Profile: "holiday", Priority: 10},
}

// DefaultRules returns the default rules whose profiles the catalog has as system-wide
// profiles: "m:" → meeting, "h:" → holiday, out-of-office (free/busy oof, or an all-day
// event titled "out of office") → holiday.
func DefaultRules(cat *presence.Catalog) []presence.CalendarRule {
	var rs []presence.CalendarRule
	for _, r := range defaultRules {
		if _, ok := cat.Profile(r.Profile); ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// Match returns the rule an occurrence falls under: among the rules whose every condition
// holds, the lowest priority, then the first listed.
func Match(rules []presence.CalendarRule, o Occurrence) (presence.CalendarRule, bool) {
	best := -1
	for i, r := range rules {
		if !matches(r, o) {
			continue
		}
		if best < 0 || r.Priority < rules[best].Priority {
			best = i
		}
	}
	if best < 0 {
		return presence.CalendarRule{}, false
	}
	return rules[best], true
}

func matches(r presence.CalendarRule, o Occurrence) bool {
	title := strings.ToLower(strings.TrimSpace(o.Summary))
	switch {
	case r.TitlePrefix != "" && !strings.HasPrefix(title, strings.ToLower(r.TitlePrefix)):
		return false
	case r.TitleContains != "" && !strings.Contains(title, strings.ToLower(r.TitleContains)):
		return false
	case r.ShowAs != "" && !strings.EqualFold(r.ShowAs, string(o.ShowAs)):
		return false
	case r.AllDay != nil && *r.AllDay != o.AllDay:
		return false
	}
	return true
}

// CheckRules reports what is wrong with rules, each problem naming its key (key[i].field).
// profile tells whether a profile exists.
func CheckRules(key string, rules []presence.CalendarRule, profile func(string) bool) []string {
	var problems []string
	for i, r := range rules {
		at := fmt.Sprintf("%s[%d]", key, i)
		if r.TitlePrefix == "" && r.TitleContains == "" && r.ShowAs == "" && r.AllDay == nil {
			problems = append(problems, at+": no condition: set title_prefix, title_contains, show_as or all_day")
		}
		if r.ShowAs != "" && !slices.Contains([]ShowAs{ShowBusy, ShowFree, ShowTentative, ShowOOF}, ShowAs(strings.ToLower(r.ShowAs))) {
			problems = append(problems, fmt.Sprintf("%s.show_as: %q is not busy, free, tentative or oof", at, r.ShowAs))
		}
		switch {
		case r.Profile == "":
			problems = append(problems, at+".profile: missing")
		case !profile(r.Profile):
			problems = append(problems, fmt.Sprintf("%s.profile: %q is not a system-wide profile", at, r.Profile))
		}
	}
	return problems
}

// sortRules orders rules by priority, stable: the order Match decides in.
func sortRules(rules []presence.CalendarRule) []presence.CalendarRule {
	rs := slices.Clone(rules)
	slices.SortStableFunc(rs, func(a, b presence.CalendarRule) int { return cmp.Compare(a.Priority, b.Priority) })
	return rs
}
