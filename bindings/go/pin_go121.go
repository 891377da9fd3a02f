//go:build go1.21

package rio

import (
	"runtime"
	"unsafe"
)

type bufPins struct{ p runtime.Pinner }

func (b *bufPins) pin(p unsafe.Pointer) { b.p.Pin(p) }
func (b *bufPins) unpin()               { b.p.Unpin() }
