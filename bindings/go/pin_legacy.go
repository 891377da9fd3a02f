//go:build !go1.21

package rio

import "unsafe"

// bufPins does nothing before Go 1.21: bufAddr moved the buffers to the
// heap, which is not moving, and the callers KeepAlive them (see pin.go).
type bufPins struct{}

func (b *bufPins) pin(unsafe.Pointer) {}
func (b *bufPins) unpin()             {}
