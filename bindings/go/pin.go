package rio

// Descriptor arrays (struct iovec, rio_slice_t) hold buffer addresses and
// so may not live in Go memory when passed to C (cgo: no Go pointers to Go
// pointers). They are C.malloc'd instead and filled with the buffers'
// addresses, which must then neither move nor be freed until the call
// returns:
//
//   - Go 1.21 and later pin every buffer with runtime.Pinner (pin_go121.go),
//     which is what the cgo rules ask for.
//   - Go 1.19 and 1.20 have no Pinner (pin_legacy.go): the buffers are made
//     to escape to the heap (see keepOnHeap), where the garbage collector
//     never moves objects, and runtime.KeepAlive holds them until the call
//     returned. The addresses are stored as integers so that cgocheck sees
//     no Go pointer written to C memory.
//
// In both cases the library keeps no reference once the call has returned.

import "unsafe"

// escapeSink is never written (escapeOn stays false) but the compiler
// cannot prove it: whatever keepOnHeap is given escapes to the heap.
var (
	escapeOn   bool
	escapeSink unsafe.Pointer
)

func keepOnHeap(p unsafe.Pointer) {
	if escapeOn {
		escapeSink = p
	}
}

// bufAddr returns the address of b's first byte as an integer (0 for an
// empty slice), after pinning it in pins.
func bufAddr(pins *bufPins, b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	p := unsafe.Pointer(&b[0])
	keepOnHeap(p)
	pins.pin(p)
	return uintptr(p)
}
