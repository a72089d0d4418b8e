package footfall

import (
	"math"
	"math/rand/v2"
	"testing"
)

// total is what assign minimises: the cost of the pairs made plus limit/2
// for every row and column left alone.
func total(cost [][]float64, limit float64, rows []int) float64 {
	nc := 0
	if len(cost) > 0 {
		nc = len(cost[0])
	}
	s, paired := 0.0, 0
	for i, j := range rows {
		if j >= 0 {
			s += cost[i][j]
			paired++
		}
	}
	return s + limit/2*float64(len(rows)+nc-2*paired)
}

// bruteForce tries every partial pairing.
func bruteForce(cost [][]float64, limit float64) float64 {
	nc := 0
	if len(cost) > 0 {
		nc = len(cost[0])
	}
	best := math.Inf(1)
	rows := make([]int, len(cost))
	usedCol := make([]bool, nc)
	var rec func(i int)
	rec = func(i int) {
		if i == len(cost) {
			best = math.Min(best, total(cost, limit, rows))
			return
		}
		rows[i] = -1
		rec(i + 1)
		for j := 0; j < nc; j++ {
			if !usedCol[j] && cost[i][j] < limit {
				usedCol[j], rows[i] = true, j
				rec(i + 1)
				usedCol[j] = false
			}
		}
		rows[i] = -1
	}
	rec(0)
	return best
}

func checkAssign(t *testing.T, cost [][]float64, limit float64, rows []int) {
	t.Helper()
	seen := map[int]bool{}
	for i, j := range rows {
		if j < 0 {
			continue
		}
		if seen[j] {
			t.Errorf("column %d paired twice: %v", j, rows)
		}
		seen[j] = true
		if !(cost[i][j] < limit) {
			t.Errorf("pair %d-%d costs %g, not below the limit %g", i, j, cost[i][j], limit)
		}
	}
	if got, want := total(cost, limit, rows), bruteForce(cost, limit); math.Abs(got-want) > 1e-9 {
		t.Errorf("cost %v: total %g with %v, brute force finds %g", cost, got, rows, want)
	}
}

func TestAssign(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		cost [][]float64
		want []int
	}{
		{"nothing", nil, []int{}},
		{"no columns", [][]float64{{}, {}}, []int{-1, -1}},
		{"one pair", [][]float64{{0.2}}, []int{0}},
		{"too dear to pair", [][]float64{{1}}, []int{-1}},
		{"outside the gate", [][]float64{{inf, 0.3}, {math.NaN(), inf}}, []int{1, -1}},
		// Greedy takes the cheapest pair 0-0 (0.1) and is left with 1-1
		// (0.9): 1.0 in all. The optimum crosses over: 0.2 + 0.2.
		{"optimal beats greedy", [][]float64{{0.1, 0.2}, {0.2, 0.9}}, []int{1, 0}},
		{"more rows than columns", [][]float64{{0.5}, {0.1}, {0.3}}, []int{-1, 0, -1}},
		{"more columns than rows", [][]float64{{0.5, 0.4, 0.05}}, []int{2}},
		// Pairing 0-1 and 1-0 costs 0.95 + 0.95; pairing 0-0 alone and
		// leaving row 1 and column 1 costs 0.1 + 1.
		{"one good pair beats two poor ones", [][]float64{{0.1, 0.95}, {0.95, inf}}, []int{0, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := assign(tc.cost, 1)
			if len(rows) != len(tc.want) {
				t.Fatalf("rows = %v, want %v", rows, tc.want)
			}
			for i := range rows {
				if rows[i] != tc.want[i] {
					t.Fatalf("rows = %v, want %v", rows, tc.want)
				}
			}
			checkAssign(t, tc.cost, 1, rows)
		})
	}
}

// TestAssignOptimal compares assign with brute force on random small
// matrices with gated (infinite) pairs, ties and several limits.
func TestAssignOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 3000; k++ {
		nr, nc := rng.IntN(6), rng.IntN(6)
		limit := []float64{1, 0.5, 2}[k%3]
		cost := make([][]float64, nr)
		for i := range cost {
			cost[i] = make([]float64, nc)
			for j := range cost[i] {
				switch r := rng.Float64(); {
				case r < 0.25:
					cost[i][j] = math.Inf(1)
				case r < 0.35:
					cost[i][j] = 0.5 // ties
				default:
					cost[i][j] = rng.Float64() * 1.2 * limit
				}
			}
		}
		checkAssign(t, cost, limit, assign(cost, limit))
		if t.Failed() {
			return
		}
	}
}
