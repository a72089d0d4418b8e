package config

import "strings"

// suggest returns the known key (or section) that an unknown key most likely
// meant, or "" when none is close enough to be a useful guess.
func suggest(name string) string {
	lastPart := name[strings.LastIndex(name, ".")+1:]

	// The right name in the wrong section ("every" at the top level,
	// "detect.hold").
	if k := unique(func(k string) bool { return leafOf(k) == lastPart }); k != "" {
		return k
	}

	// Part of a name ("threshold", "color", "mosaic_block").
	if len(lastPart) >= 4 {
		if k := unique(func(k string) bool { return strings.Contains(leafOf(k), lastPart) }); k != "" {
			return k
		}
	}

	// A misspelling: within a third of the name's length, edits counted.
	best, bestD := "", len(name)
	for _, k := range keys {
		if d := distance(name, k.name); d < bestD {
			best, bestD = k.name, d
		}
	}
	if !strings.Contains(name, ".") {
		for _, s := range sections() {
			if d := distance(name, s); d < bestD {
				best, bestD = s, d
			}
		}
	}
	if bestD*3 <= len(name)+1 {
		return best
	}

	// A misspelt word of a name ("colour" for fill_color).
	if len(lastPart) >= 4 {
		return unique(func(k string) bool {
			for _, w := range strings.Split(leafOf(k), "_") {
				if distance(lastPart, w)*3 <= len(lastPart)+1 {
					return true
				}
			}
			return false
		})
	}
	return ""
}

// unique returns the one key matching ok, or "" if none or several do.
func unique(ok func(key string) bool) string {
	found := ""
	for _, k := range keys {
		if ok(k.name) {
			if found != "" {
				return ""
			}
			found = k.name
		}
	}
	return found
}

func leafOf(key string) string { return key[strings.LastIndex(key, ".")+1:] }

// distance is the Levenshtein distance between a and b, counting an adjacent
// transposition as one edit (optimal string alignment).
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
