package config

import (
	"strconv"
	"strings"
)

// suggest returns the candidate closest to word, or "" when none is close
// enough to be a plausible typo. It is used for unknown keys, strategies
// and upstream names.
func suggest(word string, candidates []string) string {
	best, bestDist := "", maxTypoDistance(word)+1
	folded := foldKey(word)
	for _, c := range candidates {
		if c == word {
			continue
		}
		// "loadBalancing" and "load-balancing" are the right key in the
		// wrong case style; treat them as the closest possible match.
		d := 0
		if foldKey(c) != folded {
			lw, lc := strings.ToLower(word), strings.ToLower(c)
			d = distance(lw, lc)
			// "warning" for "warn", "health" for "health_checks": a
			// longer or shorter form of the word is a likely meaning,
			// though a plain typo is likelier still.
			if d > maxTypoDistance(word) && min(len(lw), len(lc)) >= 4 &&
				(strings.HasPrefix(lw, lc) || strings.HasPrefix(lc, lw)) {
				d = maxTypoDistance(word)
			}
		}
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	return best
}

// maxTypoDistance is how many edits a typo of word may contain. Short words
// allow fewer, or "ip" would "correct" to almost anything.
func maxTypoDistance(word string) int {
	switch n := len(word); {
	case n <= 3:
		return 1
	case n <= 8:
		return 2
	default:
		return 3
	}
}

// foldKey drops case and separators so naming-style mistakes compare equal.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r != '_' && r != '-' && r != ' ' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// distance is the optimal string alignment (restricted Damerau-Levenshtein)
// distance: insertions, deletions, substitutions and swaps of adjacent
// characters each cost one, since a swap is the most common typing slip.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows suffice: the swap rule looks back two rows.
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

// didYouMean formats a suggestion for an error message, or "" when there is
// none.
func didYouMean(s string) string {
	if s == "" {
		return ""
	}
	return ", did you mean " + quote(s) + "?"
}

// quote wraps a user's value in double quotes for a message, escaping
// control characters so each error stays on one line, and shortening long
// values so one bad line cannot flood the terminal.
func quote(s string) string {
	const maxRunes = 60
	if r := []rune(s); len(r) > maxRunes {
		s = string(r[:maxRunes]) + "…"
	}
	return strconv.Quote(s)
}
