package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"syscall"
)

const (
	// maxReadExtents bounds the chunks of one structured read; the rest
	// of the range goes out as data.
	maxReadExtents = 1024
	// maxStatusExtents bounds the descriptors of one BLOCK_STATUS reply;
	// the client asks again for the rest.
	maxStatusExtents = 1 << 14
)

// handle executes one request and sends its reply.
func (t *transmission) handle(ctx context.Context, req request, payload []byte) {
	if errno, msg := t.check(req); errno != 0 {
		t.fail(req, errno, msg)
		return
	}
	switch req.Type {
	case cmdRead:
		t.read(ctx, req)
	case cmdWrite:
		t.write(ctx, req, payload)
	case cmdFlush:
		t.flush(ctx, req)
	case cmdTrim, cmdWriteZeroes:
		t.zero(ctx, req)
	case cmdBlockStatus:
		t.blockStatus(req)
	}
}

// check validates a request's type, flags and range; it returns 0 or the
// error to reply with.
func (t *transmission) check(req request) (uint32, string) {
	var fua uint16
	if t.wdev != nil {
		fua = cmdFlagFUA
	}
	allowed := fua
	writes := false
	switch req.Type {
	case cmdRead:
		if t.structured {
			allowed |= cmdFlagDF
		}
	case cmdWrite, cmdTrim:
		writes = true
	case cmdWriteZeroes:
		writes = true
		allowed |= cmdFlagNoHole
	case cmdFlush:
		return checkFlags(req, allowed)
	case cmdBlockStatus:
		if !t.meta {
			return errInval, "no metadata context was negotiated"
		}
		if req.Length == 0 {
			return errInval, "empty block status request"
		}
		allowed |= cmdFlagReqOne
	default:
		return errInval, "unknown command"
	}
	if errno, msg := checkFlags(req, allowed); errno != 0 {
		return errno, msg
	}
	if writes && t.wdev == nil {
		return errPerm, "the export is read-only"
	}
	size := uint64(t.dev.Size())
	if req.Offset > size || uint64(req.Length) > size-req.Offset {
		if writes {
			return errNoSpc, "request beyond the end of the export"
		}
		return errInval, "request beyond the end of the export"
	}
	if (req.Type == cmdRead || req.Type == cmdWrite) && int64(req.Length) > t.maxReq {
		return errOverflow, "request larger than the maximum request size"
	}
	return 0, ""
}

func checkFlags(req request, allowed uint16) (uint32, string) {
	if req.CommandFlags&^allowed != 0 {
		return errInval, "unsupported command flags"
	}
	return 0, ""
}

// read answers NBD_CMD_READ. With structured replies, hole runs go out as
// OFFSET_HOLE chunks and are never read; a failure is one ERROR_OFFSET
// chunk and no data. Without them, a failure is a simple error reply and
// no data.
func (t *transmission) read(ctx context.Context, req request) {
	off, n := int64(req.Offset), int64(req.Length)
	buf := getBuf(int(n))
	defer putBuf(buf)
	if !t.structured {
		if err := t.dev.ReadAt(ctx, buf, off); err != nil {
			t.logFailure("read", err)
			t.failAt(req, errnoOf(err), "read failed", off)
			return
		}
		t.send(appendSimpleReply(nil, 0, req.Handle), buf)
		return
	}
	if n == 0 {
		t.send(appendChunk(nil, replyFlagDone, replyTypeNone, req.Handle, 0))
		return
	}
	exts := []Extent{{Length: n}}
	if req.CommandFlags&cmdFlagDF == 0 {
		if e, err := t.dev.Extents(off, n, maxReadExtents); err == nil {
			exts = cover(e, n)
		}
	}
	out := make([][]byte, 0, 2*len(exts))
	pos := int64(0)
	for i, e := range exts {
		var flags uint16
		if i == len(exts)-1 {
			flags = replyFlagDone
		}
		if e.Hole {
			h := appendChunk(nil, flags, replyTypeOffsetHole, req.Handle, 12)
			h = binary.BigEndian.AppendUint64(h, uint64(off+pos))
			out = append(out, binary.BigEndian.AppendUint32(h, uint32(e.Length)))
		} else {
			data := buf[pos : pos+e.Length]
			if err := t.dev.ReadAt(ctx, data, off+pos); err != nil {
				t.logFailure("read", err)
				t.failAt(req, errnoOf(err), "read failed", off+pos)
				return
			}
			h := appendChunk(nil, flags, replyTypeOffsetData, req.Handle, uint32(8+e.Length))
			out = append(out, binary.BigEndian.AppendUint64(h, uint64(off+pos)), data)
		}
		pos += e.Length
	}
	t.send(out...)
}

// cover trims or extends extents to exactly n bytes; what a device left
// undescribed is data.
func cover(exts []Extent, n int64) []Extent {
	var out []Extent
	left := n
	for _, e := range exts {
		if left == 0 {
			break
		}
		if e.Length <= 0 {
			continue
		}
		l := min(e.Length, left)
		out = addExtent(out, l, e.Hole)
		left -= l
	}
	if left > 0 {
		out = addExtent(out, left, false)
	}
	return out
}

func (t *transmission) write(ctx context.Context, req request, payload []byte) {
	if err := t.wdev.WriteAt(ctx, payload, int64(req.Offset)); err != nil {
		t.logFailure("write", err)
		t.fail(req, errnoOf(err), "write failed")
		return
	}
	t.finishWrite(ctx, req)
}

func (t *transmission) zero(ctx context.Context, req request) {
	punch := req.Type == cmdTrim || req.CommandFlags&cmdFlagNoHole == 0
	if req.Length > 0 {
		if err := t.wdev.Zero(ctx, int64(req.Offset), int64(req.Length), punch); err != nil {
			t.logFailure("zero", err)
			t.fail(req, errnoOf(err), "zeroing failed")
			return
		}
	}
	t.finishWrite(ctx, req)
}

// finishWrite honours NBD_CMD_FLAG_FUA and replies.
func (t *transmission) finishWrite(ctx context.Context, req request) {
	if req.CommandFlags&cmdFlagFUA != 0 {
		if err := t.wdev.Flush(ctx); err != nil {
			t.logFailure("flush", err)
			t.fail(req, errnoOf(err), "flush failed")
			return
		}
	}
	t.ok(req)
}

func (t *transmission) flush(ctx context.Context, req request) {
	if t.wdev != nil {
		if err := t.wdev.Flush(ctx); err != nil {
			t.logFailure("flush", err)
			t.fail(req, errnoOf(err), "flush failed")
			return
		}
	}
	t.ok(req)
}

// blockStatus answers NBD_CMD_BLOCK_STATUS for base:allocation. When the
// device cannot tell, the whole range is reported allocated (status 0), as
// proto.md allows.
func (t *transmission) blockStatus(req request) {
	off, n := int64(req.Offset), int64(req.Length)
	limit := maxStatusExtents
	if req.CommandFlags&cmdFlagReqOne != 0 {
		limit = 1
	}
	exts, err := t.dev.Extents(off, n, limit)
	if err != nil || len(exts) == 0 {
		exts = []Extent{{Length: n}}
	}
	if len(exts) > limit {
		exts = exts[:limit]
	}
	p := binary.BigEndian.AppendUint32(make([]byte, 0, 4+8*len(exts)), metaContextID)
	var sum int64
	for _, e := range exts {
		if e.Length <= 0 || sum+e.Length > n {
			break
		}
		sum += e.Length
		var state uint32
		if e.Hole {
			state = stateHole | stateZero
		}
		p = binary.BigEndian.AppendUint32(p, uint32(e.Length))
		p = binary.BigEndian.AppendUint32(p, state)
	}
	if len(p) == 4 { // nothing usable: one allocated run
		p = binary.BigEndian.AppendUint32(p, uint32(n))
		p = binary.BigEndian.AppendUint32(p, 0)
	}
	h := appendChunk(nil, replyFlagDone, replyTypeBlockStatus, req.Handle, uint32(len(p)))
	t.send(h, p)
}

// logFailure reports a failure of the export's device; the client gets an
// error reply. A connection going away is not worth a line.
func (t *transmission) logFailure(op string, err error) {
	if !errors.Is(err, context.Canceled) {
		t.c.s.o.Logf("nbd: %s: %s failed: %v", t.c.nc.RemoteAddr(), op, err)
	}
}

// errnoOf maps a device error to an NBD error value.
func errnoOf(err error) uint32 {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return errNoSpc
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		return errPerm
	case errors.Is(err, context.Canceled):
		return errShutdown
	}
	return errIO
}
