package rio_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	rio "librio/bindings/go"
)

func openWAL(t *testing.T, rt *rio.Runtime, dir string, opts *rio.WALOptions) *rio.WAL {
	t.Helper()
	w, err := rt.OpenWAL(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func entry(i int) []byte { return []byte(fmt.Sprintf("entry %d %s", i, pattern(i, 9, i%50))) }

// replayAll returns seq -> data for every entry from `from` on, checking
// that sequence numbers are consecutive.
func replayAll(t *testing.T, w *rio.WAL, from uint64) map[uint64][]byte {
	t.Helper()
	got := map[uint64][]byte{}
	var last uint64
	err := w.Replay(from, func(seq uint64, data []byte) error {
		if last != 0 && seq != last+1 {
			return fmt.Errorf("seq %d after %d", seq, last)
		}
		last = seq
		got[seq] = append([]byte(nil), data...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWALAppendReplayReopen(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := filepath.Join(t.TempDir(), "wal") // created by OpenWAL
		w := openWAL(t, rt, dir, nil)
		if w.Dir() != dir || w.LastSeq() != 0 {
			t.Fatalf("new log: Dir %q, LastSeq %d", w.Dir(), w.LastSeq())
		}
		for i := 1; i <= 5; i++ {
			if seq, err := w.Append(entry(i)); seq != uint64(i) || err != nil {
				t.Fatalf("Append %d = %d, %v", i, seq, err)
			}
		}
		if seq, err := w.AppendBatch([][]byte{entry(6), {}, entry(8)}); seq != 6 || err != nil {
			t.Fatalf("AppendBatch = %d, %v", seq, err)
		}
		if seq, err := w.Append(nil); seq != 9 || err != nil { // empty entries are allowed
			t.Fatalf("Append(nil) = %d, %v", seq, err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		want := map[uint64][]byte{7: {}, 9: {}}
		for _, i := range []int{1, 2, 3, 4, 5, 6, 8} {
			want[uint64(i)] = entry(i)
		}
		check := func(got map[uint64][]byte, from uint64) {
			t.Helper()
			if len(got) != 10-int(from) {
				t.Fatalf("replay from %d: %d entries, want %d", from, len(got), 10-int(from))
			}
			for seq, data := range got {
				if !bytes.Equal(data, want[seq]) {
					t.Fatalf("entry %d = %q, want %q", seq, data, want[seq])
				}
			}
		}
		check(replayAll(t, w, 1), 1)
		check(replayAll(t, w, 4), 4)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}

		w2 := openWAL(t, rt, dir, &rio.WALOptions{Recovery: rio.RecoverStrict})
		if w2.LastSeq() != 9 {
			t.Fatalf("LastSeq after reopen = %d", w2.LastSeq())
		}
		check(replayAll(t, w2, 0), 1)
		if seq, err := w2.Append([]byte("after reopen")); seq != 10 || err != nil {
			t.Fatalf("Append after reopen = %d, %v", seq, err)
		}
	})
}

func TestWALReader(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		w := openWAL(t, rt, t.TempDir(), &rio.WALOptions{NoSyncAfterBatch: true, FlushTimeout: -1})
		for i := 1; i <= 3; i++ {
			w.Append(entry(i))
		}
		r, err := w.NewReader(2)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var seqs []uint64
		for r.Next() {
			if !bytes.Equal(r.Data(), entry(int(r.Seq()))) {
				t.Fatalf("entry %d = %q", r.Seq(), r.Data())
			}
			seqs = append(seqs, r.Seq())
		}
		if r.Err() != nil || fmt.Sprint(seqs) != "[2 3]" {
			t.Fatalf("read %v, %v", seqs, r.Err())
		}
		// Tailing: entries appended later are found by later Next calls.
		w.Append(entry(4))
		if !r.Next() || r.Seq() != 4 || !bytes.Equal(r.Data(), entry(4)) || r.Next() {
			t.Fatalf("tailing: seq %d, %v", r.Seq(), r.Err())
		}
		// A reader outlives its WAL.
		r2, err := w.NewReader(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for r2.Next() {
			n++
		}
		if n != 4 || r2.Err() != nil {
			t.Fatalf("reader after WAL Close: %d entries, %v", n, r2.Err())
		}
		r2.Close()
		r2.Close()
		if r2.Next() || !errors.Is(r2.Err(), fs.ErrClosed) {
			t.Fatalf("Next after Close: %v", r2.Err())
		}
		// Replay stops at the callback's error.
		w2 := openWAL(t, rt, w.Dir(), nil)
		stop := errors.New("stop")
		calls := 0
		if err := w2.Replay(1, func(uint64, []byte) error { calls++; return stop }); err != stop || calls != 1 {
			t.Fatalf("Replay = %v after %d calls", err, calls)
		}
	})
}

func TestWALErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := t.TempDir()
		w := openWAL(t, rt, dir, nil)
		_, err := rt.OpenWAL(dir, nil)
		wantErrno(t, err, syscall.EBUSY, dir)
		_, err = w.AppendBatch(nil)
		wantErrno(t, err, syscall.EINVAL, "rio_wal_append_batch")
		err = w.TruncateBefore(5)
		wantErrno(t, err, syscall.EINVAL, "rio_wal_truncate_before")
		_, err = rt.OpenWAL(filepath.Join(dir, "x"), &rio.WALOptions{SegmentSize: 100})
		wantErrno(t, err, syscall.EINVAL, "segment_size")
		_, err = rt.OpenWAL(filepath.Join(dir, "y"), &rio.WALOptions{Recovery: 7})
		wantErrno(t, err, syscall.EINVAL, "recovery_mode")
		file := filepath.Join(dir, "file")
		os.WriteFile(file, nil, 0o644)
		_, err = rt.OpenWAL(file, nil)
		wantErrno(t, err, syscall.ENOTDIR, file)

		// Corruption before the tail: EBADMSG naming the segment.
		cdir := filepath.Join(dir, "corrupt")
		c := openWAL(t, rt, cdir, nil)
		for i := 1; i <= 10; i++ {
			c.Append([]byte(fmt.Sprintf("payload-%02d-%s", i, bytes.Repeat([]byte{'x'}, 40))))
		}
		c.Close()
		segs, _ := filepath.Glob(filepath.Join(cdir, "*.wal"))
		if len(segs) != 1 {
			t.Fatalf("segments: %v", segs)
		}
		raw, _ := os.ReadFile(segs[0])
		at := bytes.Index(raw, []byte("payload-03-"))
		if at < 0 {
			t.Fatal("entry 3 not found in the segment")
		}
		raw[at+12] ^= 0xff
		os.WriteFile(segs[0], raw, 0o644)
		_, err = rt.OpenWAL(cdir, nil)
		wantErrno(t, err, syscall.EBADMSG, filepath.Base(segs[0]))

		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		closed := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("%s after Close: %v", what, err)
			}
		}
		_, err = w.Append(nil)
		closed("Append", err)
		_, err = w.AppendBatch([][]byte{{1}})
		closed("AppendBatch", err)
		closed("Sync", w.Sync())
		closed("TruncateBefore", w.TruncateBefore(1))
		_, err = w.NewReader(1)
		closed("NewReader", err)
		closed("Replay", w.Replay(1, func(uint64, []byte) error { return nil }))
		if w.LastSeq() != 0 {
			t.Fatal("LastSeq after Close")
		}
	})
}

func TestWALTruncateBefore(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := t.TempDir()
		w := openWAL(t, rt, dir, &rio.WALOptions{SegmentSize: 8192, NoSyncAfterBatch: true})
		for i := 1; i <= 500; i++ {
			if _, err := w.Append(entry(i)); err != nil {
				t.Fatal(err)
			}
		}
		segs := func() int { s, _ := filepath.Glob(filepath.Join(dir, "*.wal")); return len(s) }
		before := segs()
		if before < 3 {
			t.Fatalf("only %d segments", before)
		}
		if err := w.TruncateBefore(400); err != nil {
			t.Fatal(err)
		}
		if segs() >= before {
			t.Fatalf("segments %d -> %d", before, segs())
		}
		got := replayAll(t, w, 1)
		first := uint64(1 << 62)
		for seq := range got {
			if seq < first {
				first = seq
			}
		}
		if first == 1 || first > 400 || len(got) != int(501-first) {
			t.Fatalf("after TruncateBefore(400): first %d, %d entries", first, len(got))
		}
		for seq, data := range got {
			if !bytes.Equal(data, entry(int(seq))) {
				t.Fatalf("entry %d differs", seq)
			}
		}
		if err := w.TruncateBefore(w.LastSeq() + 1); err != nil {
			t.Fatal(err)
		}
		if seq, _ := w.Append([]byte("next")); seq != 501 {
			t.Fatalf("seq after truncation %d", seq)
		}
	})
}

// Many goroutines appending to one WAL (single entries and batches) while
// readers tail it: every acknowledged entry is replayed with its data, at
// the sequence number its append returned, batches consecutive.
func TestWALConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := t.TempDir()
		w := openWAL(t, rt, dir, &rio.WALOptions{FlushTimeout: 200 * time.Microsecond})
		const workers, perWorker = 16, 40
		var mu sync.Mutex
		acked := map[uint64][]byte{}
		var wg sync.WaitGroup
		errs := make(chan error, workers+2)
		done := make(chan struct{})
		for w2 := 0; w2 < workers; w2++ {
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					if i%10 == 9 {
						batch := [][]byte{[]byte(fmt.Sprintf("w%d-%d-a", id, i)), []byte(fmt.Sprintf("w%d-%d-b", id, i)),
							pattern(id, i, 3000)}
						first, err := w.AppendBatch(batch)
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						for k, e := range batch {
							acked[first+uint64(k)] = e
						}
						mu.Unlock()
						continue
					}
					data := []byte(fmt.Sprintf("w%d-%d %s", id, i, pattern(id, i, i*7)))
					seq, err := w.Append(data)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if _, dup := acked[seq]; dup {
						errs <- fmt.Errorf("seq %d returned twice", seq)
					}
					acked[seq] = data
					mu.Unlock()
				}
			}(w2)
		}
		// Two tailing readers: whatever they see must be in order.
		var rwg sync.WaitGroup
		for k := 0; k < 2; k++ {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				r, err := w.NewReader(1)
				if err != nil {
					errs <- err
					return
				}
				defer r.Close()
				var last uint64
				for {
					for r.Next() {
						if r.Seq() != last+1 {
							errs <- fmt.Errorf("reader: seq %d after %d", r.Seq(), last)
							return
						}
						last = r.Seq()
					}
					if r.Err() != nil {
						errs <- r.Err()
						return
					}
					select {
					case <-done:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		rwg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total := workers * (perWorker + 2*(perWorker/10))
		if len(acked) != total || w.LastSeq() != uint64(total) {
			t.Fatalf("%d acknowledged, LastSeq %d, want %d", len(acked), w.LastSeq(), total)
		}
		check := func(w *rio.WAL) {
			got := replayAll(t, w, 1)
			if len(got) != total {
				t.Fatalf("replayed %d entries, want %d", len(got), total)
			}
			seqs := make([]int, 0, len(got))
			for seq, data := range got {
				if !bytes.Equal(data, acked[seq]) {
					t.Fatalf("entry %d = %.40q, acknowledged %.40q", seq, data, acked[seq])
				}
				seqs = append(seqs, int(seq))
			}
			sort.Ints(seqs)
			if seqs[0] != 1 || seqs[len(seqs)-1] != total {
				t.Fatalf("seqs %d..%d", seqs[0], seqs[len(seqs)-1])
			}
		}
		check(w)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		check(openWAL(t, rt, dir, nil))
	})
}

// Close racing with appends: each append either succeeds (and is then
// replayed after reopening) or reports fs.ErrClosed.
func TestWALCloseWhileAppending(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := t.TempDir()
		w := openWAL(t, rt, dir, nil)
		var mu sync.Mutex
		acked := map[uint64]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; ; i++ {
					data := fmt.Sprintf("g%d-%d", g, i)
					seq, err := w.Append([]byte(data))
					if errors.Is(err, fs.ErrClosed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					acked[seq] = data
					mu.Unlock()
				}
			}(g)
		}
		time.Sleep(20 * time.Millisecond)
		var cw sync.WaitGroup
		for c := 0; c < 3; c++ {
			cw.Add(1)
			go func() {
				defer cw.Done()
				if err := w.Close(); err != nil {
					errs <- err
				}
			}()
		}
		cw.Wait()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := replayAll(t, openWAL(t, rt, dir, nil), 1)
		if len(got) != len(acked) || len(acked) == 0 {
			t.Fatalf("replayed %d, acknowledged %d", len(got), len(acked))
		}
		for seq, data := range acked {
			if string(got[seq]) != data {
				t.Fatalf("entry %d = %q, want %q", seq, got[seq], data)
			}
		}
	})
}

func TestWALAppendAsyncWait(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		dir := filepath.Join(t.TempDir(), "wal")
		w := openWAL(t, rt, dir, nil)
		for _, seq := range []uint64{0, 1} {
			if err := w.Wait(seq, -1); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("Wait(%d) on an empty log = %v, want EINVAL", seq, err)
			}
		}
		var last uint64
		for i := 1; i <= 300; i++ {
			seq, err := w.AppendAsync(entry(i))
			if err != nil || seq != uint64(i) {
				t.Fatalf("AppendAsync %d = %d, %v", i, seq, err)
			}
			last = seq
		}
		if err := w.Wait(last+1, 0); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("Wait(never assigned) = %v, want EINVAL", err)
		}
		if err := w.Wait(150, time.Minute); err != nil {
			t.Fatal(err)
		}
		if d := w.DurableSeq(); d < 150 {
			t.Fatalf("DurableSeq = %d after Wait(150)", d)
		}
		if err := w.Wait(last, -1); err != nil {
			t.Fatal(err)
		}
		if d, l := w.DurableSeq(), w.LastSeq(); d != last || l != last {
			t.Fatalf("DurableSeq %d, LastSeq %d, want %d", d, l, last)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Wait(1, -1); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Wait after Close = %v", err)
		}
		if _, err := w.AppendAsync([]byte("x")); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("AppendAsync after Close = %v", err)
		}
		if w.DurableSeq() != 0 {
			t.Fatal("DurableSeq after Close")
		}
		w2 := openWAL(t, rt, dir, nil)
		got := replayAll(t, w2, 1)
		if len(got) != 300 || !bytes.Equal(got[300], entry(300)) {
			t.Fatalf("reopened: %d entries", len(got))
		}
	})
}

func TestWALAppendAsyncConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, rt *rio.Runtime) {
		w := openWAL(t, rt, filepath.Join(t.TempDir(), "wal"), nil)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				var seq uint64
				var err error
				for i := 0; i < 200; i++ {
					if seq, err = w.AppendAsync(entry(g*1000 + i)); err != nil {
						errs <- err
						return
					}
					if i%50 == 49 {
						if err = w.Wait(seq, -1); err != nil {
							errs <- err
							return
						}
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if w.DurableSeq() != 800 {
			t.Fatalf("DurableSeq = %d, want 800", w.DurableSeq())
		}
	})
}
