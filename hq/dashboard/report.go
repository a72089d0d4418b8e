package dashboard

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/veil-edge/veil/hq/store"
)

// maxCameraCharts bounds the per-camera charts on one page; filter by store
// to see the others.
const maxCameraCharts = 60

// report is what the dashboard shows for one query: sums, comparisons and
// charts, computed from the store's totals of the period and of the
// previous period of equal length.
type report struct {
	Total, Prev sums
	In, Out     change
	Stores      []storeRow // ranked by In, then name
	StoresChart chart
	StoreCharts []chart // one per store, by name
	// CameraCharts are one per camera ("store/camera"), by name, at most
	// maxCameraCharts; CamerasHidden counts the rest.
	CameraCharts  []chart
	CamerasHidden int
	Cameras       []string // camera names in the period, for the filter's suggestions
}

// storeRow is one store's period against the previous one.
type storeRow struct {
	Rank      int
	Store     string
	Cur, Prev sums
	In, Out   change
	Share     string // of all In, "12.5 %"
}

// change is a period's number against the previous period's.
type change struct {
	Abs   int64
	Pct   string // "+12.5 %", "new" when the previous was 0, "–" when both are 0
	Class string // "up", "down" or "" for the page's colours
}

func newChange(cur, prev int64) change {
	c := change{Abs: cur - prev}
	switch {
	case prev == 0 && cur == 0:
		c.Pct = "–"
	case prev == 0:
		c.Pct = "new"
	default:
		c.Pct = fmt.Sprintf("%+.1f %%", float64(cur-prev)*100/float64(prev))
	}
	switch {
	case c.Abs > 0:
		c.Class = "up"
	case c.Abs < 0:
		c.Class = "down"
	}
	return c
}

type cameraKey struct{ store, camera string }

// newReport sums cur (the period's totals, by p.Bucket) and prev (the
// previous period's) into the dashboard's numbers and charts.
func newReport(p params, cur, prev []store.Total) report {
	var r report
	byStore := map[string]*storeRow{}
	row := func(s string) *storeRow {
		if byStore[s] == nil {
			byStore[s] = &storeRow{Store: s}
		}
		return byStore[s]
	}
	storeBuckets := map[string]map[time.Time]sums{}
	cameraBuckets := map[cameraKey]map[time.Time]sums{}
	cameras := map[string]bool{}
	addBucket := func(m map[time.Time]sums, t store.Total) {
		s := m[t.Start]
		s.add(t.In, t.Out)
		m[t.Start] = s
	}
	for _, t := range cur {
		r.Total.add(t.In, t.Out)
		row(t.Store).Cur.add(t.In, t.Out)
		if storeBuckets[t.Store] == nil {
			storeBuckets[t.Store] = map[time.Time]sums{}
		}
		addBucket(storeBuckets[t.Store], t)
		k := cameraKey{t.Store, t.Camera}
		if cameraBuckets[k] == nil {
			cameraBuckets[k] = map[time.Time]sums{}
		}
		addBucket(cameraBuckets[k], t)
		cameras[t.Camera] = true
	}
	for _, t := range prev {
		r.Prev.add(t.In, t.Out)
		row(t.Store).Prev.add(t.In, t.Out)
	}
	r.In, r.Out = newChange(r.Total.In, r.Prev.In), newChange(r.Total.Out, r.Prev.Out)

	for _, sr := range byStore {
		sr.In, sr.Out = newChange(sr.Cur.In, sr.Prev.In), newChange(sr.Cur.Out, sr.Prev.Out)
		sr.Share = "–"
		if r.Total.In > 0 {
			sr.Share = fmt.Sprintf("%.1f %%", float64(sr.Cur.In)*100/float64(r.Total.In))
		}
		r.Stores = append(r.Stores, *sr)
	}
	slices.SortFunc(r.Stores, func(a, b storeRow) int {
		return cmp.Or(cmp.Compare(b.Cur.In, a.Cur.In), cmp.Compare(a.Store, b.Store))
	})
	for i := range r.Stores {
		r.Stores[i].Rank = i + 1
	}
	if len(r.Stores) > 0 {
		r.StoresChart = storesChart(r.Stores)
	}
	for _, s := range slices.Sorted(maps.Keys(storeBuckets)) {
		r.StoreCharts = append(r.StoreCharts, timeChart("Store "+s, p, storeBuckets[s]))
	}
	keys := slices.SortedFunc(maps.Keys(cameraBuckets), func(a, b cameraKey) int {
		return cmp.Or(cmp.Compare(a.store, b.store), cmp.Compare(a.camera, b.camera))
	})
	for i, k := range keys {
		if i == maxCameraCharts {
			r.CamerasHidden = len(keys) - i
			break
		}
		r.CameraCharts = append(r.CameraCharts, timeChart("Camera "+k.store+"/"+k.camera, p, cameraBuckets[k]))
	}
	r.Cameras = slices.Sorted(maps.Keys(cameras))
	return r
}

// deviceRow is one device as the page and /api/devices show it.
type deviceRow struct {
	Store      string    `json:"store"`
	Device     string    `json:"device"`
	Status     string    `json:"status"` // "online", "offline" or "unknown" (no status yet)
	StatusAt   time.Time `json:"status_at,omitzero"`
	LastReport time.Time `json:"last_report,omitzero"`
	Reports    int64     `json:"reports"`
	// Unsigned is how many of Reports were stored without the box's
	// signature (hq.unsigned_devices): counts nobody can vouch for.
	Unsigned int64 `json:"unsigned"`
	// Conflicts is how many reports were refused because head office holds
	// a different one under their (device, boot, seq); LastConflict is when
	// the last arrived.
	Conflicts    int64     `json:"conflicts"`
	LastConflict time.Time `json:"last_conflict,omitzero"`
	// Stale is set when the last report is older than Options.StaleAfter,
	// or there is none.
	Stale bool `json:"stale"`
}

func newDeviceRows(ds []store.Device, now time.Time, staleAfter time.Duration) []deviceRow {
	rows := make([]deviceRow, 0, len(ds))
	for _, d := range ds {
		r := deviceRow{
			Store: d.Store, Device: d.Device, Status: "unknown",
			StatusAt: d.StatusAt.UTC(), LastReport: d.LastReport.UTC(), Reports: d.Reports,
			Unsigned: d.Unsigned, Conflicts: d.Conflicts, LastConflict: d.LastConflict.UTC(),
			Stale: d.LastReport.IsZero() || now.Sub(d.LastReport) > staleAfter,
		}
		switch {
		case d.StatusAt.IsZero():
		case d.Online:
			r.Status = "online"
		default:
			r.Status = "offline"
		}
		rows = append(rows, r)
	}
	return rows
}
