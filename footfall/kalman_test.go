package footfall

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const ms = time.Millisecond

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestKalmanPredict checks the prediction against the closed form of one
// (position, velocity) pair: x + v·dt, and P ← F P Fᵀ + Q with Q the
// continuous white-noise acceleration terms q·dt³/3, q·dt²/2, q·dt.
func TestKalmanPredict(t *testing.T) {
	tests := []struct {
		name   string
		dt     time.Duration
		vx, vy float64
	}{
		{"40 ms at 25 fps", 40 * ms, 100, -20},
		{"200 ms at 5 Hz", 200 * ms, -80, 0},
		{"a 1.3 s gap", 1300 * ms, 30, 60},
		{"no time passes", 0, 50, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKalman([zDim]float64{300, 200, 100, 0.4}, time.Second)
			k.x[4], k.x[5] = tc.vx, tc.vy
			p0 := k.p
			k.predict(time.Second + tc.dt)
			dt := tc.dt.Seconds()
			if !near(k.x[0], 300+tc.vx*dt, 1e-12) || !near(k.x[1], 200+tc.vy*dt, 1e-12) || k.x[2] != 100 || k.x[3] != 0.4 {
				t.Errorf("state %v after %v", k.x[:4], tc.dt)
			}
			q := sq(kAccel * 100)
			// p0 is diagonal: Pxx' = Pxx + dt²·Pvv + q dt³/3, Pxv' = dt·Pvv + q dt²/2.
			wantXX := p0[0][0] + dt*dt*p0[4][4] + q*dt*dt*dt/3
			wantXV := dt*p0[4][4] + q*dt*dt/2
			wantVV := p0[4][4] + q*dt
			if !near(k.p[0][0], wantXX, 1e-12) || !near(k.p[0][4], wantXV, 1e-12) || !near(k.p[4][0], wantXV, 1e-12) || !near(k.p[4][4], wantVV, 1e-12) {
				t.Errorf("P x/vx block = %g %g %g, want %g %g %g", k.p[0][0], k.p[0][4], k.p[4][4], wantXX, wantXV, wantVV)
			}
			if k.p[0][1] != 0 || k.p[0][5] != 0 {
				t.Errorf("x and y became correlated: %g %g", k.p[0][1], k.p[0][5])
			}
		})
	}
}

// TestKalmanPredictComposes: predicting over irregular steps gives the same
// state and covariance as one step over the whole time (the person's height
// held steady, since process noise scales with it).
func TestKalmanPredictComposes(t *testing.T) {
	steps := [][]time.Duration{
		{40 * ms, 40 * ms, 40 * ms, 40 * ms, 40 * ms},
		{10 * ms, 170 * ms, 20 * ms},
		{199 * ms, 1 * ms},
	}
	for _, st := range steps {
		a := newKalman([zDim]float64{50, 60, 80, 0.5}, 0)
		a.x[4], a.x[5] = 40, -15
		b := *a
		b.p = a.p
		var total time.Duration
		for _, d := range st {
			total += d
			a.predict(total)
		}
		b.predict(total)
		for i := 0; i < kDim; i++ {
			if !near(a.x[i], b.x[i], 1e-9) {
				t.Errorf("steps %v: x[%d] %g, one step %g", st, i, a.x[i], b.x[i])
			}
			for j := 0; j < kDim; j++ {
				if !near(a.p[i][j], b.p[i][j], 1e-9) {
					t.Errorf("steps %v: P[%d][%d] %g, one step %g", st, i, j, a.p[i][j], b.p[i][j])
				}
			}
		}
	}
}

// TestKalmanUpdate checks one update against the scalar Kalman gain: with no
// correlation between measured components, each moves P/(P+R) of the way to
// the measurement and its variance becomes P·R/(P+R).
func TestKalmanUpdate(t *testing.T) {
	tests := []struct {
		name string
		pxx  float64 // prior variance of x
		z    [zDim]float64
	}{
		{"equal trust halves the gap", sq(kMeas * 100), [zDim]float64{110, 200, 100, 0.4}},
		{"a sure prior barely moves", 1e-6, [zDim]float64{110, 190, 104, 0.5}},
		{"an unsure prior jumps to the measurement", 1e8, [zDim]float64{90, 205, 98, 0.3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := &kalman{}
			k.x = [kDim]float64{100, 200, 100, 0.4, 0, 0, 0}
			for i := range kDim {
				k.p[i][i] = 25
			}
			k.p[0][0] = tc.pxx
			r := measNoise(100)
			prior := k.x
			pp := k.p
			k.update(tc.z)
			for i := 0; i < zDim; i++ {
				g := pp[i][i] / (pp[i][i] + r[i])
				if want := prior[i] + g*(tc.z[i]-prior[i]); !near(k.x[i], want, 1e-9) {
					t.Errorf("x[%d] = %g, want %g", i, k.x[i], want)
				}
				if want := pp[i][i] * r[i] / (pp[i][i] + r[i]); !near(k.p[i][i], want, 1e-9) {
					t.Errorf("P[%d][%d] = %g, want %g", i, i, k.p[i][i], want)
				}
			}
			for i := zDim; i < kDim; i++ {
				if k.x[i] != 0 || k.p[i][i] != 25 {
					t.Errorf("uncorrelated rate %d changed: x %g, P %g", i, k.x[i], k.p[i][i])
				}
			}
		})
	}
}

// TestKalmanTracksWalker feeds noisy boxes of a person walking at constant
// speed at irregular times: the filter learns the velocity, its place is
// closer to the truth than the raw boxes, and P stays symmetric with a
// positive diagonal.
func TestKalmanTracksWalker(t *testing.T) {
	for _, overhead := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(1, 2))
		const vx, vy = 120.0, 35.0 // pixels per second
		truth := func(at time.Duration) image.Rectangle {
			s := at.Seconds()
			x, y := 100+vx*s, 150+vy*s
			return image.Rect(int(x-20), int(y-100), int(x+20), int(y))
		}
		var k *kalman
		var at time.Duration
		var rawErr, kfErr, sumVX, sumVY float64
		n := 0
		for i := 0; i < 60; i++ {
			at += time.Duration(40+rng.IntN(160)) * ms // 5 to 25 Hz
			b := truth(at)
			j := func() int { return rng.IntN(11) - 5 }
			noisy := image.Rect(b.Min.X+j(), b.Min.Y+j(), b.Max.X+j(), b.Max.Y+j())
			z := measure(noisy, overhead)
			if k == nil {
				k = newKalman(z, at)
				continue
			}
			k.predict(at)
			k.update(z)
			if i >= 20 {
				tz := measure(b, overhead)
				x, y := k.place()
				kfErr += math.Hypot(x-tz[0], y-tz[1])
				rawErr += math.Hypot(z[0]-tz[0], z[1]-tz[1])
				sumVX += k.x[4]
				sumVY += k.x[5]
				n++
			}
		}
		// The velocity of each step is noisy (±5 px box edges); its mean is not.
		if mx, my := sumVX/float64(n), sumVY/float64(n); math.Abs(mx-vx) > 0.05*vx || math.Abs(my-vy) > 0.05*vx {
			t.Errorf("overhead %v: mean velocity %.1f, %.1f, want %.0f, %.0f", overhead, mx, my, vx, vy)
		}
		if kfErr >= rawErr {
			t.Errorf("overhead %v: filtered place error %.1f px not below raw %.1f px", overhead, kfErr/float64(n), rawErr/float64(n))
		}
		for i := 0; i < kDim; i++ {
			if k.p[i][i] <= 0 {
				t.Errorf("P[%d][%d] = %g", i, i, k.p[i][i])
			}
			for j := 0; j < kDim; j++ {
				if k.p[i][j] != k.p[j][i] {
					t.Errorf("P not symmetric at %d,%d", i, j)
				}
			}
		}
		if got, want := k.box(overhead), truth(at); math.Abs(float64(got.Min.X-want.Min.X)) > 6 || math.Abs(float64(got.Max.Y-want.Max.Y)) > 6 {
			t.Errorf("overhead %v: box %v, truth %v", overhead, got, want)
		}
	}
}

func TestInvert4(t *testing.T) {
	tests := []struct {
		name string
		m    [zDim][zDim]float64
		ok   bool
	}{
		{"identity", [zDim][zDim]float64{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}, true},
		{"needs pivoting", [zDim][zDim]float64{{0, 2, 0, 0}, {3, 0, 0, 1}, {0, 0, 4, 0}, {1, 0, 0, 5}}, true},
		{"symmetric positive definite", [zDim][zDim]float64{{4, 1, 0, 0.5}, {1, 3, 0.2, 0}, {0, 0.2, 2, 0}, {0.5, 0, 0, 1}}, true},
		{"singular", [zDim][zDim]float64{{1, 2, 0, 0}, {2, 4, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, ok := invert4(tc.m)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			for i := 0; i < zDim; i++ {
				for j := 0; j < zDim; j++ {
					v := 0.0
					for l := 0; l < zDim; l++ {
						v += tc.m[i][l] * inv[l][j]
					}
					want := 0.0
					if i == j {
						want = 1
					}
					if math.Abs(v-want) > 1e-12 {
						t.Errorf("(M·M⁻¹)[%d][%d] = %g", i, j, v)
					}
				}
			}
		})
	}
}
