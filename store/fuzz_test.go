package store

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// FuzzSnapshotRestore: a snapshot file (or one a leader sends) is either
// refused with an error or restores a state, setting the applied index the
// header names; it never panics.
func FuzzSnapshotRestore(f *testing.F) {
	good := fsm.New(fsm.Options{})
	good.Apply(fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/{uid}")})
	var buf bytes.Buffer
	if err := (&fsmSnapshot{state: good.Snapshot(), index: 7, term: 2}).write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:snapshotHeaderSize])
	f.Add([]byte("wimmsnap"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a := newFSMAdapter(fsmMachine{fsm.New(fsm.Options{})}, fsmCodec, hclog.NewNullLogger())
		if err := a.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			return
		}
		if want := binary.BigEndian.Uint64(b[len(snapshotMagic)+1:]); a.applied.Load() != want {
			t.Fatalf("applied %d after restoring a snapshot at %d", a.applied.Load(), want)
		}
	})
}

// FuzzVerifyEntry: whatever a log entry read back from disk holds, the
// check never panics, accepts an entry with its own checksum, and refuses
// it once any byte of its data differs.
func FuzzVerifyEntry(f *testing.F) {
	f.Add(uint64(8), uint64(2), uint8(raft.LogCommand), []byte(`{"op":"put-service"}`), []byte{}, uint16(3))
	f.Add(uint64(1), uint64(1), uint8(raft.LogConfiguration), []byte{}, []byte("wck1\x00\x00\x00\x00"), uint16(0))
	f.Add(uint64(9), uint64(3), uint8(raft.LogCommand), []byte("x"), []byte("wck2abcd"), uint16(0))
	f.Fuzz(func(t *testing.T, index, term uint64, typ uint8, data, ext []byte, flip uint16) {
		l := raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
		checked, problem := verifyEntry(index, &l)
		if len(ext) == 0 && (checked || problem != "") {
			t.Fatalf("an entry without checksum (older data) was refused: %q", problem)
		}
		l.Extensions = checksumExtension(&l)
		if checked, problem := verifyEntry(index, &l); !checked || problem != "" {
			t.Fatalf("an intact entry was refused: %q", problem)
		}
		if len(data) > 0 {
			d := append([]byte(nil), data...)
			d[int(flip)%len(d)] ^= 0x01
			l.Data = d
			if _, problem := verifyEntry(index, &l); problem == "" {
				t.Fatal("a flipped data byte passed the checksum")
			}
		}
	})
}
