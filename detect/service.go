package detect

import (
	"container/heap"
	"errors"
	"fmt"
	"image"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// netsPerWorker is how many networks (one per input size) a worker keeps,
// and netPixelsPerWorker how many input pixels all of them may have:
// OpenCV keeps every layer's output for a network's input size, about
// 175 MB per million input pixels (measured: 213 MB for 1248x960, the fine
// pass of a 768x576 frame), so 3 Mpx is about 550 MB a worker. Regions come
// in sizes rounded to 64 px, so a camera meets a few dozen sizes; keeping
// up to 16 makes rebuilding rare (measured on vtest.avi: 229 builds in 100
// keyframes with 6, 85 with 24).
const (
	netsPerWorker      = 16
	netPixelsPerWorker = 3 << 20
)

// ErrLate is returned for a pass whose deadline passed before a network was
// free to run it: the caller's frame must be treated as not detected.
var ErrLate = errors.New("detection missed its deadline")

// ErrServiceClosed is returned for a pass submitted after the service's
// last client closed.
var ErrServiceClosed = errors.New("detection service closed")

// Service is the box's one detection service: a pool of workers, each with
// its own BlazeNets (one per input size, kept in a small cache), that runs
// the passes of every camera's keyframes. Passes are taken earliest
// deadline first, so cameras with equal deadlines are served in the order
// their keyframes arrived and none is starved. A pass still waiting at its
// deadline is answered with ErrLate without running, and so are the rest
// of a keyframe's passes once one has failed: no network time is spent on
// a keyframe that will be redacted whole anyway. (Also dropping passes that
// would end after their deadline, by the recent time per pixel, was tried:
// with four busy cameras it showed 48-66 % of frames whole instead of
// 55-74 %, but leaked 13-15 % of small faces instead of 10 %: the frames it
// saved from grey were covered by older detections.)
//
// Clients (Frame detectors) hold the service open: the workers start with
// the first client and stop, closing their networks, when the last one
// closes. A Service is safe for concurrent use.
type Service struct {
	onnx      []byte
	threshold float32
	workers   int
	people    *peopleModel // nil: no person detector

	mu            sync.Mutex
	cond          *sync.Cond
	queue         passQueue // face passes
	peopleQueue   passQueue // person passes
	peopleRunning int
	peopleSpans   []span      // person passes that ended in the last peopleWindow
	peopleStarts  []time.Time // person passes running now, by start
	seq           uint64
	clients       int
	stopping      bool          // the last client left: workers exit once the queue is empty
	stopped       chan struct{} // closed when the current workers have all exited
	running       int

	ran, late, built atomic.Int64
	peopleRan        atomic.Int64
	peopleLate       atomic.Int64
}

// peopleModel is the person detector the service runs for counting.
type peopleModel struct {
	kind      string // PersonCenterNet or PersonSSDLite
	graph     []byte
	threshold float32
	share     float64 // of the networks' time person passes keep while face passes wait
}

// ServiceStats counts the passes a service ran and answered late, and the
// networks its workers built (one per input size they met, kept in a small
// cache).
type ServiceStats struct {
	Ran, Late, Built int64
	// PeopleRan and PeopleLate count the person passes run and answered
	// late.
	PeopleRan, PeopleLate int64
}

// NewService makes a detection service for the verified BlazeFace back-256
// ONNX bytes with workers networks running at once (detect.threads).
// threshold is the minimum face score.
func NewService(onnx []byte, threshold float32, workers int) *Service {
	s := &Service{onnx: onnx, threshold: threshold, workers: max(1, workers)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// SetPeople gives the service the verified centernet-person graph, so it
// also runs person passes for counting (DetectPeople). Call it before the
// first client; threshold is the minimum person score, share the part of
// the networks' time person passes keep while face passes wait (0: only
// time the face search leaves; DefaultPeopleShare).
func (s *Service) SetPeople(graph []byte, threshold float32, share float64) {
	s.SetPersonModel(PersonCenterNet, graph, threshold, share)
}

// SetPersonModel is SetPeople for the person model kind (PersonCenterNet
// or PersonSSDLite) and its verified graph.
func (s *Service) SetPersonModel(kind string, graph []byte, threshold float32, share float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.people = &peopleModel{kind: kind, graph: graph, threshold: threshold, share: share}
}

// PeopleInput is the person network's input for frames of the given size
// at the given input width (PersonModelInput of the service's person
// model); PersonInput when the service has none.
func (s *Service) PeopleInput(frame image.Point, width int) image.Point {
	s.mu.Lock()
	pm := s.people
	s.mu.Unlock()
	if pm == nil {
		return PersonInput(frame, width)
	}
	return PersonModelInput(pm.kind, frame, width)
}

// HasPeople reports whether the service runs a person detector.
func (s *Service) HasPeople() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.people != nil
}

// ProbePeople builds and runs the person network for an input of size in
// (PeopleInput) once, so a graph that does not load or run is found before
// counting depends on it.
func (s *Service) ProbePeople(in image.Point) error {
	s.mu.Lock()
	pm := s.people
	s.mu.Unlock()
	if pm == nil {
		return errors.New("detection service has no person detector")
	}
	n, err := NewPersonDetector(pm.kind, pm.graph, in, pm.threshold)
	if err != nil {
		return err
	}
	defer n.Close()
	img := gocv.NewMatWithSize(in.Y, in.X, gocv.MatTypeCV8UC3)
	defer img.Close()
	_, err = n.Detect(img)
	return err
}

// maxPeopleRunning is how many person passes may run at once: all but one
// worker, so a face pass always finds a network free soon. Counting never
// holds up redaction for longer than one person pass.
func (s *Service) maxPeopleRunning() int { return max(1, s.workers-1) }

// DetectPeople finds people in img, a frame already scaled to a person
// network's input (PeopleInput), and returns boxes in the pixels of a
// frame of size frame. Face passes go first (redaction before counting),
// but person passes keep their share of the networks' time (SetPeople); a pass is
// answered with ErrLate if its deadline passes before a network is free. img must stay valid until DetectPeople returns.
func (s *Service) DetectPeople(img gocv.Mat, frame image.Point, deadline time.Time) ([]Person, error) {
	done := make(chan passResult, 1)
	s.mu.Lock()
	if s.clients == 0 || s.stopping {
		s.mu.Unlock()
		return nil, ErrServiceClosed
	}
	if s.people == nil {
		s.mu.Unlock()
		return nil, errors.New("detection service has no person detector")
	}
	s.seq++
	heap.Push(&s.peopleQueue, &pass{img: img, deadline: deadline, seq: s.seq, done: done, people: true, frame: frame})
	s.cond.Broadcast()
	s.mu.Unlock()
	r := <-done
	return r.people, r.err
}

// Model is the verified ONNX bytes the service's networks are built from.
func (s *Service) Model() []byte { return s.onnx }

// Threshold is the minimum face score of its networks.
func (s *Service) Threshold() float32 { return s.threshold }

// Workers is how many passes run at once.
func (s *Service) Workers() int { return s.workers }

// Stats returns the passes run and answered late so far.
func (s *Service) Stats() ServiceStats {
	return ServiceStats{Ran: s.ran.Load(), Late: s.late.Load(), Built: s.built.Load(),
		PeopleRan: s.peopleRan.Load(), PeopleLate: s.peopleLate.Load()}
}

// Probe builds and runs a network of the given size once, so a model that
// does not load or run is found before any frame depends on it.
func (s *Service) Probe(w, h int) error {
	n, err := NewBlazeNet(s.onnx, w, h, s.threshold)
	if err != nil {
		return err
	}
	defer n.Close()
	img := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer img.Close()
	_, err = n.Run(img)
	return err
}

// acquire registers a client, starting the workers if it is the first.
func (s *Service) acquire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients++
	if s.clients > 1 {
		return
	}
	for s.stopped != nil {
		// The previous workers are still leaving: wait for them.
		done := s.stopped
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
	s.stopping = false
	s.stopped = make(chan struct{})
	s.running = s.workers
	for i := 0; i < s.workers; i++ {
		go s.work(s.stopped)
	}
}

// release unregisters a client; the last one stops the workers and waits
// until they have closed their networks.
func (s *Service) release() {
	s.mu.Lock()
	s.clients--
	if s.clients > 0 {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	done := s.stopped
	s.cond.Broadcast()
	s.mu.Unlock()
	<-done
}

// pass is one network run over an image the client keeps alive until the
// pass is answered.
type pass struct {
	img      gocv.Mat
	deadline time.Time
	seq      uint64
	cancel   *atomic.Bool
	done     chan<- passResult
	index    int
	people   bool        // a person pass
	frame    image.Point // a person pass: the size of the frame img was scaled from
}

type passResult struct {
	index  int
	cands  []Candidate
	people []Person
	err    error
}

// run submits the images as passes due by deadline and waits for all of
// them. cancel, when set by the caller, makes workers skip passes not yet
// started. The images must stay valid until run returns.
func (s *Service) run(imgs []gocv.Mat, deadline time.Time, cancel *atomic.Bool) ([][]Candidate, error) {
	if cancel == nil {
		cancel = new(atomic.Bool)
	}
	done := make(chan passResult, len(imgs))
	s.mu.Lock()
	if s.clients == 0 || s.stopping {
		s.mu.Unlock()
		return nil, ErrServiceClosed
	}
	for i, img := range imgs {
		s.seq++
		heap.Push(&s.queue, &pass{img: img, deadline: deadline, seq: s.seq, cancel: cancel, done: done, index: i})
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	out := make([][]Candidate, len(imgs))
	var errs []error
	for range imgs {
		r := <-done
		out[r.index] = r.cands
		if r.err != nil {
			// The keyframe has failed: its passes not yet started are
			// skipped, leaving the networks to keyframes that can still
			// make their deadlines.
			cancel.Store(true)
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			if errors.Is(e, ErrLate) {
				return nil, ErrLate
			}
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// queued is how many passes wait for a worker.
func (s *Service) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.Len()
}

// work runs passes until the last client leaves; the last worker out
// closes stopped.
func (s *Service) work(stopped chan struct{}) {
	nets := netCache{onnx: s.onnx, threshold: s.threshold, built: &s.built}
	var pnets personNets
	defer func() {
		nets.close()
		pnets.close()
		s.mu.Lock()
		s.running--
		if s.running == 0 {
			s.stopped = nil
			close(stopped)
		}
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		var p *pass
		for {
			p = s.next()
			if p != nil || (s.stopping && s.queue.Len() == 0 && s.peopleQueue.Len() == 0) {
				break
			}
			s.cond.Wait()
		}
		if p == nil {
			s.mu.Unlock()
			return
		}
		pm := s.people
		var started time.Time
		if p.people {
			s.peopleRunning++
			started = time.Now()
			s.peopleStarts = append(s.peopleStarts, started)
		}
		s.mu.Unlock()
		if p.people {
			r := s.runPeople(p, pm, &pnets)
			s.mu.Lock()
			s.peopleRunning--
			if i := slices.Index(s.peopleStarts, started); i >= 0 {
				s.peopleStarts = slices.Delete(s.peopleStarts, i, i+1)
			}
			s.peopleSpans = append(s.peopleSpans, span{started, time.Now()})
			s.cond.Broadcast()
			s.mu.Unlock()
			p.done <- r
			continue
		}
		r := passResult{index: p.index}
		switch {
		case p.cancel != nil && p.cancel.Load():
			r.err = ErrLate
		case time.Now().After(p.deadline):
			s.late.Add(1)
			r.err = ErrLate
		default:
			r.cands, r.err = nets.run(p.img)
			s.ran.Add(1)
		}
		p.done <- r
	}
}

// DefaultPeopleShare is the share of the service's network time person
// passes get by default even while face passes wait (footfall.detect_share):
// counting keeps going, slowly, on a box whose face search alone would take
// every network (as the live face search does: it detects whenever a
// network is free).
const DefaultPeopleShare = 0.15

// peopleWindow is how far back the person passes' share is measured.
const peopleWindow = 2 * time.Second

// next pops the pass a free worker should run, or nil. Face passes come
// first: a person pass is taken while no face pass waits, or while person
// passes have had less than their share (SetPeople) of the networks' time
// over the last peopleWindow; and never on more than maxPeopleRunning workers at once.
// Within each queue the pass due first goes first. Called with s.mu held.
func (s *Service) next() *pass {
	facesDue := s.queue.Len() > 0
	peopleDue := s.peopleQueue.Len() > 0 && s.peopleRunning < s.maxPeopleRunning()
	switch {
	case facesDue && peopleDue:
		if s.people != nil && s.peopleShare(time.Now()) < s.people.share {
			return heap.Pop(&s.peopleQueue).(*pass)
		}
		return heap.Pop(&s.queue).(*pass)
	case facesDue:
		return heap.Pop(&s.queue).(*pass)
	case peopleDue:
		return heap.Pop(&s.peopleQueue).(*pass)
	}
	return nil
}

// peopleShare is the share of the networks' time person passes took over
// the last peopleWindow before now (a pass still running counts from its
// start). Called with s.mu held.
func (s *Service) peopleShare(now time.Time) float64 {
	from := now.Add(-peopleWindow)
	kept := s.peopleSpans[:0]
	var busy time.Duration
	for _, sp := range s.peopleSpans {
		if sp.end.Before(from) {
			continue
		}
		kept = append(kept, sp)
		busy += sp.end.Sub(maxTime(sp.start, from))
	}
	s.peopleSpans = kept
	for _, start := range s.peopleStarts {
		busy += now.Sub(maxTime(start, from))
	}
	return busy.Seconds() / (peopleWindow.Seconds() * float64(s.workers))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// span is when one person pass ran.
type span struct{ start, end time.Time }

// runPeople runs one person pass on the worker's person network for the
// pass's input size.
func (s *Service) runPeople(p *pass, pm *peopleModel, nets *personNets) passResult {
	if time.Now().After(p.deadline) {
		s.peopleLate.Add(1)
		return passResult{err: ErrLate}
	}
	n, err := nets.get(pm, image.Pt(p.img.Cols(), p.img.Rows()))
	if err != nil {
		return passResult{err: err}
	}
	people, err := n.detectScaled(p.img, p.frame)
	s.peopleRan.Add(1)
	return passResult{people: people, err: err}
}

// personNets keeps one worker's person network, for the last input size
// it met (cameras of one box mostly share a size).
type personNets struct{ nets []PersonDetector }

func (c *personNets) get(pm *peopleModel, size image.Point) (PersonDetector, error) {
	for _, n := range c.nets {
		if w, h := n.Size(); w == size.X && h == size.Y {
			return n, nil
		}
	}
	n, err := NewPersonDetector(pm.kind, pm.graph, size, pm.threshold)
	if err != nil {
		return nil, err
	}
	c.nets = append(c.nets, n)
	if len(c.nets) > 2 {
		c.nets[0].Close()
		c.nets = c.nets[1:]
	}
	return n, nil
}

func (c *personNets) close() {
	for _, n := range c.nets {
		n.Close()
	}
	c.nets = nil
}

// netCache keeps one worker's networks by input size, least recently used
// out first.
type netCache struct {
	onnx      []byte
	threshold float32
	nets      []*BlazeNet // most recently used last
	built     *atomic.Int64
}

func (c *netCache) run(img gocv.Mat) ([]Candidate, error) {
	size := image.Pt(img.Cols(), img.Rows())
	n, err := c.get(size)
	if err != nil {
		return nil, err
	}
	return n.Run(img)
}

func (c *netCache) get(size image.Point) (*BlazeNet, error) {
	for i, n := range c.nets {
		if w, h := n.Size(); w == size.X && h == size.Y {
			c.nets = append(append(c.nets[:i:i], c.nets[i+1:]...), n)
			return n, nil
		}
	}
	n, err := NewBlazeNet(c.onnx, size.X, size.Y, c.threshold)
	if err != nil {
		return nil, fmt.Errorf("network for %dx%d: %w", size.X, size.Y, err)
	}
	c.built.Add(1)
	c.nets = append(c.nets, n)
	for len(c.nets) > 1 && (len(c.nets) > netsPerWorker || c.pixels() > netPixelsPerWorker) {
		c.nets[0].Close()
		c.nets = c.nets[1:]
	}
	return n, nil
}

// pixels is the input pixels of every network kept.
func (c *netCache) pixels() int {
	n := 0
	for _, net := range c.nets {
		w, h := net.Size()
		n += w * h
	}
	return n
}

func (c *netCache) close() {
	for _, n := range c.nets {
		n.Close()
	}
	c.nets = nil
}

// passQueue orders passes by deadline, then by submission.
type passQueue []*pass

func (q passQueue) Len() int { return len(q) }
func (q passQueue) Less(i, j int) bool {
	if !q[i].deadline.Equal(q[j].deadline) {
		return q[i].deadline.Before(q[j].deadline)
	}
	return q[i].seq < q[j].seq
}
func (q passQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *passQueue) Push(x any)   { *q = append(*q, x.(*pass)) }
func (q *passQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return p
}
