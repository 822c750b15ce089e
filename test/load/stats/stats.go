// Package stats holds the arithmetic the load harnesses share.
package stats

import (
	"cmp"
	"slices"
)

// Median returns the element of rs whose key is the median (of an even
// count, the upper of the two middle ones): the round of median
// throughput, for a harness that runs several. rs must not be empty.
func Median[T any](rs []T, key func(T) float64) T {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[len(s)/2]
}
