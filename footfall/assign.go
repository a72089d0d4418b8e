package footfall

import "math"

// assign pairs the rows of cost (tracks) with its columns (detections) at
// the least total cost, where leaving a row or a column unpaired costs
// limit/2 each, so a pair is made only if it is cheaper than leaving both
// alone: a pair costing limit or more (or +Inf, or NaN: a pair outside the
// gate) is never made. Costs must be >= 0 and limit > 0; every row of cost
// has the same length. rows[i] is the column paired with row i, or -1.
//
// It is the Hungarian method in its shortest-augmenting-path form (as Jonker
// and Volgenant's), O(n³) in n = rows + columns, on the square matrix
//
//	| cost       limit/2 |
//	| limit/2    0       |
//
// whose extra columns and rows stand for "unpaired". Tracks and people in
// one camera's frame are a few dozen at most, so n³ is small.
func assign(cost [][]float64, limit float64) (rows []int) {
	nr := len(cost)
	rows = make([]int, nr)
	for i := range rows {
		rows[i] = -1
	}
	if nr == 0 || len(cost[0]) == 0 {
		return rows
	}
	nc := len(cost[0])
	n := nr + nc
	// Anything no feasible assignment could cost: pairing everything with
	// a dummy costs n·limit/2.
	big := float64(n)*limit + 1
	at := func(i, j int) float64 {
		switch {
		case i < nr && j < nc:
			if c := cost[i][j]; c < limit {
				return c
			}
			return big
		case i < nr || j < nc:
			return limit / 2
		}
		return 0
	}
	// Potentials u (rows) and v (columns) keep every reduced cost
	// c - u - v >= 0, and 0 on the pairs made. Columns are numbered from 1;
	// column 0 is where each row's search starts. match[j] is the row
	// (numbered from 1) paired with column j.
	u := make([]float64, n+1)
	v := make([]float64, n+1)
	match := make([]int, n+1)
	way := make([]int, n+1)
	minv := make([]float64, n+1)
	used := make([]bool, n+1)
	for i := 1; i <= n; i++ {
		match[0] = i
		j0 := 0
		for j := range minv {
			minv[j], used[j] = math.Inf(1), false
		}
		for match[j0] != 0 {
			used[j0] = true
			i0, delta, j1 := match[j0], math.Inf(1), 0
			for j := 1; j <= n; j++ {
				if used[j] {
					continue
				}
				if cur := at(i0-1, j-1) - u[i0] - v[j]; cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= n; j++ {
				if used[j] {
					u[match[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
		}
		// Flip the augmenting path back to its start.
		for j0 != 0 {
			j1 := way[j0]
			match[j0] = match[j1]
			j0 = j1
		}
	}
	for j := 1; j <= nc; j++ {
		if i := match[j] - 1; i < nr && cost[i][j-1] < limit {
			rows[i] = j - 1
		}
	}
	return rows
}
