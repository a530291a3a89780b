package placement

import "math"

// quantileIndex is the 0-based rank of the q-quantile among n samples (nearest rank: the smallest sample with at
// least q·n samples at or below it).
func quantileIndex(n int, q float64) int {
	k := int(math.Ceil(q*float64(n))) - 1
	return min(max(k, 0), n-1)
}

// selectK reorders buf so that buf[k] is the value a full sort would put there and returns it. It is
// Hoare's quickselect with a median-of-three pivot: O(n) on average, deterministic, no allocation.
func selectK(buf []float32, k int) float32 {
	lo, hi := 0, len(buf)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three into buf[mid].
		if buf[mid] < buf[lo] {
			buf[mid], buf[lo] = buf[lo], buf[mid]
		}
		if buf[hi] < buf[lo] {
			buf[hi], buf[lo] = buf[lo], buf[hi]
		}
		if buf[hi] < buf[mid] {
			buf[hi], buf[mid] = buf[mid], buf[hi]
		}
		pivot := buf[mid]
		i, j := lo, hi
		for i <= j {
			for buf[i] < pivot {
				i++
			}
			for buf[j] > pivot {
				j--
			}
			if i <= j {
				buf[i], buf[j] = buf[j], buf[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return buf[k]
		}
	}
	return buf[k]
}

// quantileOf returns the q-quantile of s, using scratch (len ≥ len(s)) as work space.
func quantileOf(s []float32, q float64, scratch []float32) float64 {
	if len(s) == 0 {
		return 0
	}
	buf := scratch[:len(s)]
	copy(buf, s)
	return float64(selectK(buf, quantileIndex(len(buf), q)))
}

// quantileCombined returns the q-quantile of a + sign·b (sign is +1 or −1) without modifying either.
func quantileCombined(a, b []float32, sign float32, q float64, scratch []float32) float64 {
	buf := scratch[:len(a)]
	if sign > 0 {
		for i, v := range a {
			buf[i] = v + b[i]
		}
	} else {
		for i, v := range a {
			buf[i] = v - b[i]
		}
	}
	return float64(selectK(buf, quantileIndex(len(buf), q)))
}

// addInto sets dst[i] += sign·src[i].
func addInto(dst, src []float32, sign float32) {
	if sign > 0 {
		for i, v := range src {
			dst[i] += v
		}
		return
	}
	for i, v := range src {
		dst[i] -= v
	}
}

// meanTail is the mean of the last n samples of s (all of s when n ≥ len(s)); 0 for an empty s.
func meanTail(s []float32, n int) float64 {
	if len(s) == 0 {
		return 0
	}
	n = min(n, len(s))
	var sum float64
	for _, v := range s[len(s)-n:] {
		sum += float64(v)
	}
	return sum / float64(n)
}

// fillGaps returns s with NaN and ±Inf samples replaced (forward fill; leading gaps take the first finite
// sample) and the share of finite samples. s is copied only when it has gaps. A series without any finite
// sample yields nil.
func fillGaps(s Series) ([]float32, float64) {
	bad := 0
	for _, v := range s {
		if !finite(v) {
			bad++
		}
	}
	if bad == 0 {
		return s, 1
	}
	if bad == len(s) {
		return nil, 0
	}
	out := make([]float32, len(s))
	first := float32(0)
	for _, v := range s {
		if finite(v) {
			first = v
			break
		}
	}
	last := first
	for i, v := range s {
		if finite(v) {
			last = v
		}
		out[i] = last
	}
	return out, float64(len(s)-bad) / float64(len(s))
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// minMax returns the smallest and largest sample of s.
func minMax(s []float32) (lo, hi float64) {
	if len(s) == 0 {
		return 0, 0
	}
	l, h := s[0], s[0]
	for _, v := range s[1:] {
		l = min(l, v)
		h = max(h, v)
	}
	return float64(l), float64(h)
}
