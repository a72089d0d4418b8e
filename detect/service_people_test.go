package detect

import (
	"container/heap"
	"image"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestServiceNextPass: face passes go first; a person pass is taken when no
// face pass waits, or while person passes have had less than their share of
// the networks' time lately, and never on every worker.
func TestServiceNextPass(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		name          string
		workers       int
		peopleRunning int
		busy          bool // person passes had the networks lately (above the floor)
		faces, people []int
		want          []string
	}{
		{"below the floor: a person pass first", 2, 0, false, []int{100}, []int{500}, []string{"people500", "face100"}},
		{"above the floor: faces first", 2, 0, true, []int{100, 200}, []int{50}, []string{"face100", "face200", "people50"}},
		{"person limit reached", 2, 1, false, []int{500}, []int{100, 200}, []string{"face500"}},
		{"no face waiting", 2, 0, true, nil, []int{200, 100}, []string{"people100"}},
		{"one worker still runs people", 1, 0, false, nil, []int{100}, []string{"people100"}},
		{"share 0: only what faces leave", 2, 0, false, []int{100}, []int{50}, []string{"face100", "people50"}},
		{"three workers: two person passes", 3, 1, true, nil, []int{100, 200}, []string{"people100"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			share := DefaultPeopleShare
			if strings.HasPrefix(c.name, "share 0") {
				share = 0
			}
			s := &Service{workers: c.workers, peopleRunning: c.peopleRunning, people: &peopleModel{share: share}}
			if c.busy {
				now := time.Now()
				s.peopleSpans = []span{{now.Add(-peopleWindow), now}}
			}
			for _, d := range c.faces {
				heap.Push(&s.queue, &pass{deadline: at(d)})
			}
			for _, d := range c.people {
				heap.Push(&s.peopleQueue, &pass{deadline: at(d), people: true})
			}
			var got []string
			for p := s.next(); p != nil; p = s.next() {
				kind := "face"
				if p.people {
					kind = "people"
					s.peopleRunning++
					s.peopleStarts = append(s.peopleStarts, time.Now().Add(-peopleWindow)) // it counts as busy from now on
				}
				got = append(got, kind+strconv.Itoa(int(p.deadline.Sub(t0)/time.Millisecond)))
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("order %v, want %v", got, c.want)
			}
		})
	}
	s := &Service{workers: 2}
	now := time.Now()
	s.peopleSpans = []span{{now.Add(-3 * time.Second), now.Add(-peopleWindow - time.Second)}, {now.Add(-time.Second), now.Add(-500 * time.Millisecond)}}
	s.peopleStarts = []time.Time{now.Add(-100 * time.Millisecond)}
	if got, want := s.peopleShare(now), (0.5+0.1)/(2*peopleWindow.Seconds()); math.Abs(got-want) > 1e-3 {
		t.Errorf("peopleShare = %.3f, want %.3f", got, want)
	}
	if len(s.peopleSpans) != 1 {
		t.Errorf("spans older than the window kept: %v", s.peopleSpans)
	}
}

// TestServicePeople runs person passes through the service, alone and
// beside a face search on the same networks, and answers a pass whose
// deadline has passed with ErrLate without running it.
func TestServicePeople(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	graph, _, err := models.Load(testenv.ModelsDir(), "centernet-person")
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	onnx, _, err := models.Load(testenv.ModelsDir(), "blazeface-back-256")
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	svc := NewService(onnx, 0.5, 2)
	if _, err := NewPeople(svc, 320, time.Second); err == nil {
		t.Fatal("NewPeople on a service without a person model")
	}
	svc.SetPeople(graph, 0.3, DefaultPeopleShare)
	if err := svc.ProbePeople(image.Pt(320, 256)); err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	for i := 0; i <= 300; i++ {
		vc.Read(&frame)
	}
	vc.Close()

	people, err := NewPeople(svc, 320, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	faces, err := NewFrame(svc, DefaultFrameOptions)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 3; i++ {
			if _, err := faces.Detect(frame); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 3; i++ {
		got, err := people.Detect(frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 6 {
			t.Errorf("pass %d: %d people, want the frame's 6: %v", i, len(got), got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("face search beside person passes: %v", err)
	}
	// In the background: Start returns at once, Poll collects the pass.
	if err := people.Start(frame); err != nil {
		t.Fatal(err)
	}
	if err := people.Start(frame); err == nil {
		t.Error("a second pass started before the first was collected")
	}
	var got []Person
	for deadline := time.Now().Add(5 * time.Second); ; {
		ps, done, err := people.Poll()
		if err != nil {
			t.Fatal(err)
		}
		if done {
			got = ps
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background pass never finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) != 6 {
		t.Errorf("background pass: %d people, want 6: %v", len(got), got)
	}
	if _, done, _ := people.Poll(); done {
		t.Error("Poll reported a pass done twice")
	}
	people.timeout = -time.Second // already late when queued
	if _, err := people.Detect(frame); err != ErrLate {
		t.Errorf("a late person pass: %v, want ErrLate", err)
	}
	st := svc.Stats()
	if st.PeopleRan != 4 || st.PeopleLate != 1 {
		t.Errorf("stats %+v, want 4 person passes run and 1 late", st)
	}
	// Close waits for a pass still in flight before freeing its image.
	if err := people.Start(frame); err != nil {
		t.Fatal(err)
	}
	faces.Close()
	people.Close()
	people.Close() // idempotent
	if _, err := svc.DetectPeople(frame, image.Pt(768, 576), time.Now().Add(time.Second)); err != ErrServiceClosed {
		t.Errorf("after the last client closed: %v", err)
	}
}
