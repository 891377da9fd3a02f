package rio

/*
#include "riogo.h"

static inline riogo_ret riogo_wal_append_async(rio_wal_t *w, const void *data, size_t len, uint64_t *seq) {
    return riogo_result(rio_wal_append_async(w, data, len, seq));
}
static inline riogo_ret riogo_wal_wait(rio_wal_t *w, uint64_t seq, int64_t timeout_us) {
    return riogo_result(rio_wal_wait(w, seq, timeout_us));
}
*/
import "C"

import (
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Recovery says what opening a WAL does with invalid bytes.
type Recovery uint32

const (
	// RecoverTolerateTail (the default) cuts off a torn tail (an
	// interrupted write); corruption before it fails with EBADMSG.
	RecoverTolerateTail Recovery = C.RIO_WAL_RECOVER_TOLERATE_TAIL
	// RecoverStrict fails with EBADMSG on any invalid byte, even a torn tail.
	RecoverStrict Recovery = C.RIO_WAL_RECOVER_STRICT
)

// MaxEntry is the largest WAL entry, in bytes; larger ones fail with EINVAL.
const MaxEntry = C.RIO_WAL_MAX_ENTRY

// WALOptions configures a WAL. Zero fields mean the library's default.
type WALOptions struct {
	BatchSize uint32 // most entries per group commit (default 256)
	// Longest wait for more appenders to join a group commit (default
	// 100µs; negative: no wait). A lone appender never waits.
	FlushTimeout time.Duration
	// NoSyncAfterBatch makes Append return once the entry is written to the
	// page cache rather than fdatasync'd; Sync makes it durable.
	NoSyncAfterBatch bool
	BufferSize       uint64   // bytes of queued entries before appenders wait (default 4 MiB)
	SegmentSize      uint64   // segment file size, preallocated (default 64 MiB)
	Recovery         Recovery // RecoverTolerateTail (default) or RecoverStrict
}

// WAL is a durable write-ahead log in a directory. Appends from many
// goroutines share writes and syncs (group commit). Sequence numbers start
// at 1 and rise by one per entry, across reopenings and truncations.
type WAL struct {
	mu  sync.RWMutex
	ptr *C.rio_wal_t
	dir string
}

// OpenWAL opens the log in dir (created if missing) and recovers what is
// there. nil options mean defaults. A log can be open once at a time
// (EBUSY); corruption is EBADMSG, naming the segment file and offset.
func (rt *Runtime) OpenWAL(dir string, opts *WALOptions) (*WAL, error) {
	const op = "Runtime.OpenWAL"
	var cfgp *C.rio_wal_config_t
	var cfg C.rio_wal_config_t
	if opts != nil {
		C.rio_wal_config_default(&cfg)
		if opts.BatchSize != 0 {
			cfg.batch_size = C.uint32_t(opts.BatchSize)
		}
		switch us := opts.FlushTimeout.Microseconds(); {
		case opts.FlushTimeout < 0:
			cfg.flush_timeout_us = 0
		case opts.FlushTimeout > 0:
			if us > 1<<32-1 {
				us = 1<<32 - 1 // the library rejects it, naming the field
			}
			cfg.flush_timeout_us = C.uint32_t(us)
		}
		if opts.NoSyncAfterBatch {
			cfg.sync_after_batch = false
		}
		if opts.BufferSize != 0 {
			cfg.buffer_size = C.uint64_t(opts.BufferSize)
		}
		if opts.SegmentSize != 0 {
			cfg.segment_size = C.uint64_t(opts.SegmentSize)
		}
		cfg.recovery_mode = C.uint32_t(opts.Recovery)
		cfgp = &cfg
	}
	ptr, err := rt.lock(op)
	if err != nil {
		return nil, err
	}
	defer rt.mu.RUnlock()
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var wp *C.rio_wal_t
	if _, err := result(op, C.riogo_wal_open(ptr, cdir, cfgp, &wp)); err != nil {
		return nil, err
	}
	w := &WAL{ptr: wp, dir: dir}
	runtime.SetFinalizer(w, (*WAL).Close)
	return w, nil
}

// Dir returns the directory the log was opened in.
func (w *WAL) Dir() string { return w.dir }

func (w *WAL) lock(op string) (*C.rio_wal_t, error) {
	w.mu.RLock()
	if w.ptr == nil {
		w.mu.RUnlock()
		return nil, errClosed(op, "WAL "+w.dir)
	}
	return w.ptr, nil
}

// Append appends one entry (empty allowed; at most MaxEntry bytes) and
// returns its sequence number once it is durable (written, with
// NoSyncAfterBatch). Once a write or sync of the log failed, the log is
// poisoned and every append fails with EIO.
func (w *WAL) Append(data []byte) (uint64, error) {
	return w.appendOne("WAL.Append", data, false)
}

// AppendAsync appends one entry without waiting for it to be durable: the
// library copies it and assigns its sequence number, which this returns.
// It blocks only while the buffer (WALOptions.BufferSize) is full. Entries
// become durable in order; Wait and DurableSeq tell when.
func (w *WAL) AppendAsync(data []byte) (uint64, error) {
	return w.appendOne("WAL.AppendAsync", data, true)
}

func (w *WAL) appendOne(op string, data []byte, async bool) (uint64, error) {
	ptr, err := w.lock(op)
	if err != nil {
		return 0, err
	}
	defer w.mu.RUnlock()
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var seq C.uint64_t
	var r C.riogo_ret
	if async {
		r = C.riogo_wal_append_async(ptr, p, C.size_t(len(data)), &seq)
	} else {
		r = C.riogo_wal_append(ptr, p, C.size_t(len(data)), &seq)
	}
	if _, err := result(op, r); err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// Wait waits until every entry up to seq is durable (written, with
// NoSyncAfterBatch). A negative timeout waits without limit, 0 polls.
// Errors wrap ETIMEDOUT (err.(*Error).Timeout() is true) when the time
// passed first, EIO when the log is poisoned, EINVAL for a seq never
// assigned. Close waits for a Wait in progress.
func (w *WAL) Wait(seq uint64, timeout time.Duration) error {
	const op = "WAL.Wait"
	ptr, err := w.lock(op)
	if err != nil {
		return err
	}
	defer w.mu.RUnlock()
	us := C.int64_t(C.RIO_WAL_WAIT_FOREVER)
	if timeout >= 0 {
		us = C.int64_t(timeout / time.Microsecond)
	}
	_, err = result(op, C.riogo_wal_wait(ptr, C.uint64_t(seq), us))
	return err
}

// DurableSeq returns the sequence number up to which every entry is
// durable; 0 for none yet, or once closed.
func (w *WAL) DurableSeq() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.ptr == nil {
		return 0
	}
	return uint64(C.rio_wal_durable_seq(w.ptr))
}

// AppendBatch appends entries atomically (after a crash all of them are
// recovered or none) with consecutive sequence numbers, and returns the
// first. An empty batch fails with EINVAL.
func (w *WAL) AppendBatch(entries [][]byte) (uint64, error) {
	const op = "WAL.AppendBatch"
	ptr, err := w.lock(op)
	if err != nil {
		return 0, err
	}
	defer w.mu.RUnlock()
	// The rio_slice_t array lives in C memory (see pin.go).
	var slices *C.rio_slice_t
	var pins bufPins
	if len(entries) > 0 {
		mem := C.malloc(C.size_t(len(entries)) * C.size_t(unsafe.Sizeof(C.rio_slice_t{})))
		if mem == nil {
			panic("rio: out of memory")
		}
		defer C.free(mem)
		s := unsafe.Slice((*C.rio_slice_t)(mem), len(entries))
		for i, e := range entries {
			*(*uintptr)(unsafe.Pointer(&s[i].data)) = bufAddr(&pins, e)
			s[i].len = C.size_t(len(e))
		}
		slices = (*C.rio_slice_t)(mem)
	}
	var first C.uint64_t
	_, err = result(op, C.riogo_wal_append_batch(ptr, slices, C.size_t(len(entries)), &first))
	pins.unpin()
	runtime.KeepAlive(entries)
	if err != nil {
		return 0, err
	}
	return uint64(first), nil
}

// Sync makes every acknowledged entry durable (nearly free with the
// default options, where Append already did).
func (w *WAL) Sync() error {
	ptr, err := w.lock("WAL.Sync")
	if err != nil {
		return err
	}
	defer w.mu.RUnlock()
	_, err = result("WAL.Sync", C.riogo_wal_sync(ptr))
	return err
}

// LastSeq returns the sequence number of the last acknowledged entry
// (truncated ones count); 0 for a log that never had one, or once closed.
func (w *WAL) LastSeq() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.ptr == nil {
		return 0
	}
	return uint64(C.rio_wal_last_seq(w.ptr))
}

// TruncateBefore removes whole segment files all of whose entries are
// below seq: entries >= seq are kept, some below it may remain. EINVAL if
// seq > LastSeq()+1.
func (w *WAL) TruncateBefore(seq uint64) error {
	ptr, err := w.lock("WAL.TruncateBefore")
	if err != nil {
		return err
	}
	defer w.mu.RUnlock()
	_, err = result("WAL.TruncateBefore", C.riogo_wal_truncate_before(ptr, C.uint64_t(seq)))
	return err
}

// Close makes every acknowledged entry durable and closes the log, after
// the calls already running on it returned. Idempotent: later calls return
// nil. EIO if the log was poisoned or the final sync failed. Readers stay
// usable.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ptr == nil {
		return nil
	}
	ptr := w.ptr
	w.ptr = nil
	runtime.SetFinalizer(w, nil)
	_, err := result("WAL.Close", C.riogo_wal_close(ptr))
	return err
}

// WALReader reads a log's acknowledged entries in order, like a
// bufio.Scanner:
//
//	r, err := w.NewReader(1)
//	...
//	defer r.Close()
//	for r.Next() {
//		use(r.Seq(), r.Data())
//	}
//	if err := r.Err(); err != nil { ... }
//
// Next returns false at the end of what has been acknowledged so far; a
// later Next may find new entries (tailing). It may outlive its WAL.
type WALReader struct {
	mu   sync.Mutex
	ptr  *C.rio_wal_reader_t
	seq  uint64
	data []byte
	err  error
}

// NewReader opens a reader of the entries from sequence number from on
// (0 means 1; a truncated-away from starts at the first entry kept).
func (w *WAL) NewReader(from uint64) (*WALReader, error) {
	const op = "WAL.NewReader"
	ptr, err := w.lock(op)
	if err != nil {
		return nil, err
	}
	defer w.mu.RUnlock()
	var rp *C.rio_wal_reader_t
	if _, err := result(op, C.riogo_wal_reader_open(ptr, C.uint64_t(from), &rp)); err != nil {
		return nil, err
	}
	r := &WALReader{ptr: rp}
	runtime.SetFinalizer(r, (*WALReader).Close)
	return r, nil
}

// Next advances to the next entry; false at the end of the acknowledged
// entries or on an error (see Err; errors are final).
func (r *WALReader) Next() bool {
	const op = "WALReader.Next"
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return false
	}
	if r.ptr == nil {
		r.err = errClosed(op, "WAL reader")
		return false
	}
	var seq C.uint64_t
	var data *C.uint8_t
	var n C.size_t
	rc, err := result(op, C.riogo_wal_reader_next(r.ptr, &seq, &data, &n))
	if err != nil {
		r.err = err
		return false
	}
	if rc == 0 {
		return false
	}
	// The library's bytes are valid until its next call on this reader:
	// copy them, under the lock, into the reader's buffer.
	r.seq = uint64(seq)
	if cap(r.data) < int(n) {
		r.data = make([]byte, n)
	}
	r.data = r.data[:n]
	if n > 0 {
		copy(r.data, unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)))
	}
	return true
}

// Seq returns the sequence number of the current entry.
func (r *WALReader) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Data returns the current entry's bytes. They are overwritten by the next
// call to Next: copy them to keep them.
func (r *WALReader) Data() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data
}

// Err returns the error that stopped Next, if any (EBADMSG for a record
// that does not verify, naming the file and offset).
func (r *WALReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close frees the reader. Idempotent; always nil.
func (r *WALReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr != nil {
		C.rio_wal_reader_close(r.ptr)
		r.ptr = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}

// Replay calls fn for every acknowledged entry from sequence number from
// on, in order, and stops at the first error fn returns (which Replay
// returns). data is only valid during the call.
func (w *WAL) Replay(from uint64, fn func(seq uint64, data []byte) error) error {
	r, err := w.NewReader(from)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		if err := fn(r.seq, r.data); err != nil {
			return err
		}
	}
	return r.Err()
}
