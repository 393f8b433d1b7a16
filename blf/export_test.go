package blf

// CombinedReads is how many Getvars reading lamps and providers several at a time takes.
func CombinedReads(lamps, providers []string) int {
	return len(combinedGroups(lamps, deviceTerms)) + len(combinedGroups(providers, presenceTerms))
}
