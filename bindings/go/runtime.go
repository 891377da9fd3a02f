package rio

/*
#include "riogo.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Backend names an I/O backend.
type Backend string

const (
	// BackendAuto uses io_uring when it works, else the thread pool
	// (RUSTFS_ENABLE_IO_URING may force either). Only valid in Options.
	BackendAuto Backend = "auto"
	// BackendIOUring is io_uring; opening fails with EOPNOTSUPP and the
	// reason when it is unavailable.
	BackendIOUring Backend = "io_uring"
	// BackendThreadPool is the pread/pwrite thread pool.
	BackendThreadPool Backend = "thread_pool"
)

func backendFromC(code int64) Backend {
	switch code {
	case C.RIO_BACKEND_IO_URING:
		return BackendIOUring
	case C.RIO_BACKEND_THREAD_POOL:
		return BackendThreadPool
	}
	return Backend("unknown")
}

// Options configures a Runtime. Zero fields mean "environment variable,
// else the library's default".
type Options struct {
	Backend          Backend // "" or BackendAuto, BackendIOUring, BackendThreadPool
	QueueDepth       uint32  // submission queue entries per ring (default 256)
	MaxConcurrentOps uint32  // bound on operations in flight (RUSTFS_MAX_CONCURRENT_FILE_OPS, else 1024)
	WorkerThreads    uint32  // thread-pool workers / io-wq worker bound (default 2 x CPUs, 4..64)
}

// Runtime is an I/O engine (io_uring rings or a thread pool) shared by the
// files and WALs opened from it. Files and WALs keep the engine alive after
// the Runtime is closed, until they are closed themselves.
type Runtime struct {
	mu      sync.RWMutex
	ptr     *C.rio_runtime_t
	backend Backend
}

// Open opens a runtime. nil options mean defaults plus the environment
// (RUSTFS_ENABLE_IO_URING, RUSTFS_MAX_CONCURRENT_FILE_OPS).
func Open(opts *Options) (*Runtime, error) {
	const op = "Open"
	var cfgp *C.rio_runtime_config_t
	var cfg C.rio_runtime_config_t
	if opts != nil {
		C.rio_runtime_config_default(&cfg)
		switch opts.Backend {
		case "", BackendAuto:
			cfg.backend = C.RIO_BACKEND_AUTO
		case BackendIOUring:
			cfg.backend = C.RIO_BACKEND_IO_URING
		case BackendThreadPool:
			cfg.backend = C.RIO_BACKEND_THREAD_POOL
		default:
			return nil, errInvalid(op, "unknown backend "+string(opts.Backend)+
				` (want "auto", "io_uring" or "thread_pool")`)
		}
		cfg.queue_depth = C.uint32_t(opts.QueueDepth)
		cfg.max_concurrent_ops = C.uint32_t(opts.MaxConcurrentOps)
		cfg.worker_threads = C.uint32_t(opts.WorkerThreads)
		cfgp = &cfg
	}
	var ptr *C.rio_runtime_t
	if _, err := result(op, C.riogo_runtime_open(cfgp, &ptr)); err != nil {
		return nil, err
	}
	code, err := result(op, C.riogo_runtime_backend(ptr))
	if err != nil {
		C.rio_runtime_close(ptr)
		return nil, err
	}
	rt := &Runtime{ptr: ptr, backend: backendFromC(code)}
	runtime.SetFinalizer(rt, (*Runtime).Close)
	return rt, nil
}

// Backend returns the backend in use: BackendIOUring or BackendThreadPool.
func (rt *Runtime) Backend() Backend { return rt.backend }

// Close releases the runtime. It is idempotent and always returns nil;
// files and WALs opened from it stay usable until they are closed.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.ptr != nil {
		C.rio_runtime_close(rt.ptr)
		rt.ptr = nil
		runtime.SetFinalizer(rt, nil)
	}
	return nil
}

// lock returns the handle with the read lock held (unlock with
// rt.mu.RUnlock), or an error when the runtime is closed.
func (rt *Runtime) lock(op string) (*C.rio_runtime_t, error) {
	rt.mu.RLock()
	if rt.ptr == nil {
		rt.mu.RUnlock()
		return nil, errClosed(op, "runtime")
	}
	return rt.ptr, nil
}

// Capabilities describes what a runtime can do and, when io_uring is not
// in use, why.
type Capabilities struct {
	Backend                  Backend // BackendIOUring or BackendThreadPool
	IOUringAvailable         bool    // io_uring was set up (even if the thread pool was requested)
	SQEntries, CQEntries     uint32  // ring sizes (0 without io_uring)
	RingSetupFlags           uint32  // IORING_SETUP_* flags of the rings
	RingSetup                string  // the setup flags as text, e.g. "SINGLE_ISSUER|DEFER_TASKRUN"
	MaxConcurrentOps         uint32  // effective bound on operations in flight
	WorkerThreads            uint32  // thread-pool workers / io-wq worker bound
	IOUringOpcodes           [32]byte
	KernelRelease            string // uname -r
	IOUringUnavailableReason string // why io_uring is not in use (empty when it is)
	// Times the kernel refused to register rio_buf_alloc memory (its I/O
	// then runs unregistered), and why the last refusal happened.
	BufferRegistrationFailures      uint64
	BufferRegistrationFailureReason string
}

// SupportsOpcode reports whether io_uring opcode op (IORING_OP_*) is
// supported by the kernel (from IORING_REGISTER_PROBE).
func (c *Capabilities) SupportsOpcode(op int) bool {
	return op >= 0 && op < 8*len(c.IOUringOpcodes) && c.IOUringOpcodes[op/8]&(1<<(op%8)) != 0
}

// Capabilities reports the runtime's capabilities.
func (rt *Runtime) Capabilities() (Capabilities, error) {
	const op = "Runtime.Capabilities"
	ptr, err := rt.lock(op)
	if err != nil {
		return Capabilities{}, err
	}
	defer rt.mu.RUnlock()
	// The struct is versioned: the library fills at most struct_size bytes.
	var c C.rio_capabilities_t
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	if _, err := result(op, C.riogo_runtime_capabilities(ptr, &c)); err != nil {
		return Capabilities{}, err
	}
	caps := Capabilities{
		Backend:                  backendFromC(int64(c.backend)),
		IOUringAvailable:         bool(c.io_uring_available),
		SQEntries:                uint32(c.sq_entries),
		CQEntries:                uint32(c.cq_entries),
		RingSetupFlags:           uint32(c.ring_setup_flags),
		RingSetup:                goString(c.ring_setup[:]),
		MaxConcurrentOps:         uint32(c.max_concurrent_ops),
		WorkerThreads:            uint32(c.worker_threads),
		KernelRelease:            goString(c.kernel_release[:]),
		IOUringUnavailableReason: goString(c.io_uring_unavailable_reason[:]),

		BufferRegistrationFailures:      uint64(c.buffer_registration_failures),
		BufferRegistrationFailureReason: goString(c.buffer_registration_failure_reason[:]),
	}
	for i := range caps.IOUringOpcodes {
		caps.IOUringOpcodes[i] = byte(c.io_uring_opcodes[i])
	}
	return caps, nil
}

// MetricsPrometheus returns the runtime's metrics in the Prometheus text
// exposition format (0.0.4).
func (rt *Runtime) MetricsPrometheus() (string, error) {
	const op = "Runtime.MetricsPrometheus"
	ptr, err := rt.lock(op)
	if err != nil {
		return "", err
	}
	defer rt.mu.RUnlock()
	buf := make([]byte, 16<<10)
	for {
		n, err := result(op, C.riogo_runtime_metrics_prometheus(ptr,
			(*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if err != nil {
			return "", err
		}
		if n < int64(len(buf)) {
			return string(buf[:n]), nil
		}
		// The text grew past the buffer (or between two calls): retry bigger.
		buf = make([]byte, n+n/4+1)
	}
}
