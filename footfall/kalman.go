package footfall

import (
	"image"
	"math"
	"time"
)

// kalman is a constant-velocity Kalman filter on one person's box, in frame
// pixels: the state is
//
//	[x y h a vx vy vh]
//
// where (x, y) is the person's place (foot point, or box centre overhead),
// h the box height, a the aspect (width / height), and vx, vy, vh their rates
// per second. The aspect has no rate: a walker's width swings with their
// legs around a steady mean. The measurement is [x y h a].
//
// Motion is white-noise acceleration in continuous time, so predicting to
// t1 and then to t2 is the same as predicting to t2 at once: frames may come
// at any rate or skip. Process and measurement noise scale with the box
// height, so a near (tall) person may move more pixels than a far one.
type kalman struct {
	x  [kDim]float64
	p  [kDim][kDim]float64
	at time.Duration // stream time x and p are for
}

const (
	kDim = 7 // state size
	zDim = 4 // measurement size

	// Process noise: standard deviation of the acceleration of x and y in
	// person heights per second², the same for h (people rarely change size
	// fast), and the aspect's random walk per √second.
	kAccel  = 2.0
	kGrow   = 0.3
	kAspect = 0.15
	// Measurement noise: a detector's box edges jitter by about this
	// fraction of the person's height; its aspect by this much.
	kMeas       = 0.05
	kMeasAspect = 0.08
	// A new track's velocity is unknown: about this many heights per second
	// either way (a brisk walk is 1-1.5).
	kVel0 = 1.0
)

// newKalman starts a filter at measurement z taken at stream time at, at
// rest with an uncertain velocity.
func newKalman(z [zDim]float64, at time.Duration) *kalman {
	k := &kalman{at: at}
	copy(k.x[:zDim], z[:])
	h := math.Max(z[2], 1)
	r := measNoise(h)
	for i := 0; i < zDim; i++ {
		k.p[i][i] = 4 * r[i] // twice the measurement's standard deviation
	}
	k.p[4][4] = sq(kVel0 * h)
	k.p[5][5] = sq(kVel0 * h)
	k.p[6][6] = sq(kGrow * h)
	return k
}

func sq(v float64) float64 { return v * v }

// measNoise is the measurement variance of [x y h a] for a box h tall.
func measNoise(h float64) [zDim]float64 {
	s := sq(kMeas * h)
	return [zDim]float64{s, s, s, sq(kMeasAspect)}
}

// predict moves the state forward to stream time at; an earlier at changes
// nothing (the filter does not run backwards).
func (k *kalman) predict(at time.Duration) {
	dt := (at - k.at).Seconds()
	if dt <= 0 {
		return
	}
	k.at = at
	// x ← F x, with F = I + dt on (x,vx), (y,vy), (h,vh).
	for i := 0; i < 3; i++ {
		k.x[i] += dt * k.x[i+4]
	}
	k.x[2] = math.Max(k.x[2], 1)
	// P ← F P Fᵀ: add dt × row i+4 to row i, then the same for columns.
	for i := 0; i < 3; i++ {
		for j := 0; j < kDim; j++ {
			k.p[i][j] += dt * k.p[i+4][j]
		}
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < kDim; j++ {
			k.p[j][i] += dt * k.p[j][i+4]
		}
	}
	// + Q: continuous white-noise acceleration with spectral density q per
	// (position, rate) pair.
	h := k.x[2]
	for i, s := range [3]float64{kAccel, kAccel, kGrow} {
		q := sq(s * h)
		k.p[i][i] += q * dt * dt * dt / 3
		k.p[i][i+4] += q * dt * dt / 2
		k.p[i+4][i] += q * dt * dt / 2
		k.p[i+4][i+4] += q * dt
	}
	k.p[3][3] += sq(kAspect) * dt
}

// update corrects the state, predicted to the measurement's time, with
// measurement z.
func (k *kalman) update(z [zDim]float64) {
	r := measNoise(math.Max(k.x[2], 1))
	// S = H P Hᵀ + R: the top-left block of P.
	var s [zDim][zDim]float64
	for i := 0; i < zDim; i++ {
		for j := 0; j < zDim; j++ {
			s[i][j] = k.p[i][j]
		}
		s[i][i] += r[i]
	}
	si, ok := invert4(s)
	if !ok {
		return // cannot happen with R > 0; keep the prediction rather than NaNs
	}
	// K = P Hᵀ S⁻¹: P's first zDim columns times S⁻¹.
	var g [kDim][zDim]float64
	for i := 0; i < kDim; i++ {
		for j := 0; j < zDim; j++ {
			for l := 0; l < zDim; l++ {
				g[i][j] += k.p[i][l] * si[l][j]
			}
		}
	}
	var y [zDim]float64
	for i := range y {
		y[i] = z[i] - k.x[i]
	}
	for i := 0; i < kDim; i++ {
		for j := 0; j < zDim; j++ {
			k.x[i] += g[i][j] * y[j]
		}
	}
	k.x[2] = math.Max(k.x[2], 1)
	// Joseph form, P ← (I-KH) P (I-KH)ᵀ + K R Kᵀ, keeps P symmetric and
	// positive definite however the numbers round.
	var a [kDim][kDim]float64 // I - KH
	for i := 0; i < kDim; i++ {
		a[i][i] = 1
		for j := 0; j < zDim; j++ {
			a[i][j] -= g[i][j]
		}
	}
	ap := mul7(a, k.p)
	var p [kDim][kDim]float64
	for i := 0; i < kDim; i++ {
		for j := 0; j <= i; j++ {
			v := 0.0
			for l := 0; l < kDim; l++ {
				v += ap[i][l] * a[j][l]
			}
			for l := 0; l < zDim; l++ {
				v += g[i][l] * r[l] * g[j][l]
			}
			p[i][j], p[j][i] = v, v
		}
	}
	k.p = p
}

func mul7(a, b [kDim][kDim]float64) [kDim][kDim]float64 {
	var c [kDim][kDim]float64
	for i := 0; i < kDim; i++ {
		for l := 0; l < kDim; l++ {
			if a[i][l] == 0 {
				continue
			}
			for j := 0; j < kDim; j++ {
				c[i][j] += a[i][l] * b[l][j]
			}
		}
	}
	return c
}

// invert4 inverts a 4×4 matrix by Gauss-Jordan elimination with partial
// pivoting; ok is false if it is singular.
func invert4(m [zDim][zDim]float64) (inv [zDim][zDim]float64, ok bool) {
	for i := range inv {
		inv[i][i] = 1
	}
	for c := 0; c < zDim; c++ {
		piv := c
		for r := c + 1; r < zDim; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		if math.Abs(m[piv][c]) < 1e-12 {
			return inv, false
		}
		m[c], m[piv] = m[piv], m[c]
		inv[c], inv[piv] = inv[piv], inv[c]
		d := 1 / m[c][c]
		for j := 0; j < zDim; j++ {
			m[c][j] *= d
			inv[c][j] *= d
		}
		for r := 0; r < zDim; r++ {
			if r == c || m[r][c] == 0 {
				continue
			}
			f := m[r][c]
			for j := 0; j < zDim; j++ {
				m[r][j] -= f * m[c][j]
				inv[r][j] -= f * inv[c][j]
			}
		}
	}
	return inv, true
}

// measure turns a box into a measurement [x y h a]: its place (foot point,
// or centre seen from overhead), height and aspect.
func measure(b image.Rectangle, overhead bool) [zDim]float64 {
	x, y := foot(b)
	if overhead {
		y = float64(b.Min.Y+b.Max.Y) / 2
	}
	h := math.Max(float64(b.Dy()), 1)
	return [zDim]float64{x, y, h, float64(b.Dx()) / h}
}

// place is the filtered place (x, y).
func (k *kalman) place() (float64, float64) { return k.x[0], k.x[1] }

// height is the filtered box height.
func (k *kalman) height() float64 { return k.x[2] }

// spread is the standard deviation of the place, averaged over x and y.
func (k *kalman) spread() float64 { return math.Sqrt(math.Max(0, (k.p[0][0]+k.p[1][1])/2)) }

// box is the filtered box.
func (k *kalman) box(overhead bool) image.Rectangle {
	x, y, h := k.x[0], k.x[1], k.x[2]
	w := math.Max(k.x[3], 0.05) * h
	top := y - h
	if overhead {
		top = y - h/2
	}
	return image.Rect(int(math.Round(x-w/2)), int(math.Round(top)), int(math.Round(x+w/2)), int(math.Round(top+h)))
}
