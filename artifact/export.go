package artifact

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Export takes an artifact of the fold a running [slipstream.Follower]
// folds into, and places it at dest, which must be absent or an empty
// directory. The export runs inside the follower's loop between two flushes
// ([slipstream.Follower.Export]): the pending batch is flushed first, so the
// manifest's cursor is the applied cursor. Hashing and sealing happen after
// the loop has resumed.
//
// The artifact is assembled in a hidden directory beside dest (prefix
// [StagePrefix]) and renamed onto dest only once complete and synced; on
// any failure the stage is removed and dest is left as it was. A crash
// leaves at most the hidden stage. Cancelling ctx abandons the export: the
// stage is removed once the loop has finished writing into it.
//
// Errors: one wrapping [slipstream.ErrArtifactInvalid] when dest is
// unavailable or the exported payload fails its checks;
// [slipstream.ErrNotRunning] when the follower is not running; ctx.Err();
// the store's and the filesystem's own errors otherwise.
func Export(ctx context.Context, f *slipstream.Follower, dest string) (*Manifest, error) {
	return export(osFS{}, dest, time.Now, func(dir string) (slipstream.Export, error) {
		type result struct {
			exp slipstream.Export
			err error
		}
		done := make(chan result, 1)
		go func() {
			// Not cancelled with ctx: once the loop has the request it
			// writes into dir, and only its answer says it has stopped.
			exp, err := f.Export(context.WithoutCancel(ctx), dir)
			done <- result{exp, err}
		}()
		select {
		case r := <-done:
			return r.exp, r.err
		case <-ctx.Done():
			wait := make(chan struct{})
			go func() {
				<-done
				close(wait)
			}()
			return slipstream.Export{}, &abandonedError{err: ctx.Err(), done: wait}
		}
	})
}

// ExportStore takes an artifact of s, a fold no [slipstream.Follower] is
// running on (for example a closed fold opened for the export), and places
// it at dest, with the staging and guarantees of [Export].
func ExportStore(s slipstream.Store, dest string) (*Manifest, error) {
	return export(osFS{}, dest, time.Now, s.ExportTo)
}

// abandonedError is returned by an export writer that gave up waiting while
// the backend may still be writing into the stage: the stage may only be
// removed once done is closed.
type abandonedError struct {
	err  error
	done <-chan struct{}
}

func (e *abandonedError) Error() string { return e.err.Error() }
func (e *abandonedError) Unwrap() error { return e.err }

// export is docs/ARTIFACTS.md "Export": check dest, stage beside it, let write put the
// backend's payload in stage/data (the backend verifies its copy by
// reopening it), seal, and move the stage onto dest.
func export(fsys fsys, dest string, now func() time.Time, write func(dir string) (slipstream.Export, error)) (m *Manifest, err error) {
	stage, err := newStage(fsys, dest, StagePrefix)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if keep {
			return
		}
		var ab *abandonedError
		if errors.As(err, &ab) {
			go func() {
				<-ab.done
				_ = fsys.RemoveAll(stage)
			}()
			return
		}
		_ = fsys.RemoveAll(stage)
	}()
	exp, err := write(filepath.Join(stage, DataDir))
	if err != nil {
		var ab *abandonedError
		if errors.As(err, &ab) {
			return nil, err
		}
		return nil, fmt.Errorf("artifact: export to %s: %w", dest, err)
	}
	if exp.Backend == "" {
		return nil, invalidf("export to %s: the store named no backend", dest)
	}
	m, err = seal(fsys, stage, exp, now())
	if err != nil {
		return nil, err
	}
	if err := fsys.Chmod(stage, 0o755); err != nil {
		return nil, fmt.Errorf("artifact: chmod %s: %w", stage, err)
	}
	renamed, err := place(fsys, stage, dest)
	keep = renamed
	if err != nil {
		return nil, err
	}
	return m, nil
}
