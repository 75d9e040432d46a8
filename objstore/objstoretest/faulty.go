package objstoretest

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/slipstream-kv/slipstream/objstore"
)

// Faulty wraps a Store and consults Fail before every operation: a non-nil
// error from Fail is returned instead of performing the operation. op is one
// of "get", "put", "create", "replace", "list" and "delete"; name is the
// object name (the prefix for "list").
type Faulty struct {
	objstore.Store
	Fail func(op, name string) error
}

var _ objstore.Store = (*Faulty)(nil)

func (f *Faulty) fail(op, name string) error {
	if f.Fail == nil {
		return nil
	}
	return f.Fail(op, name)
}

func (f *Faulty) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	if err := f.fail("get", name); err != nil {
		return nil, objstore.Attrs{}, err
	}
	return f.Store.Get(ctx, name)
}

func (f *Faulty) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	if err := f.fail("put", name); err != nil {
		return err
	}
	return f.Store.Put(ctx, name, r, size)
}

func (f *Faulty) Create(ctx context.Context, name string, data []byte) error {
	if err := f.fail("create", name); err != nil {
		return err
	}
	return f.Store.Create(ctx, name, data)
}

func (f *Faulty) Replace(ctx context.Context, name string, data []byte, etag string) error {
	if err := f.fail("replace", name); err != nil {
		return err
	}
	return f.Store.Replace(ctx, name, data, etag)
}

func (f *Faulty) List(ctx context.Context, prefix string) ([]objstore.Attrs, error) {
	if err := f.fail("list", prefix); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, prefix)
}

func (f *Faulty) Delete(ctx context.Context, name string) error {
	if err := f.fail("delete", name); err != nil {
		return err
	}
	return f.Store.Delete(ctx, name)
}

// NoReplace wraps s so that Replace returns objstore.ErrNotImplemented, like
// a store without conditional replace.
func NoReplace(s objstore.Store) objstore.Store {
	return &Faulty{Store: s, Fail: func(op, name string) error {
		if op == "replace" {
			return fmt.Errorf("replace %s: %w", name, objstore.ErrNotImplemented)
		}
		return nil
	}}
}

// Recorder wraps a Store and records every operation as "op name".
type Recorder struct {
	mu  sync.Mutex
	ops []string
}

// Wrap returns s with its operations recorded in r.
func (r *Recorder) Wrap(s objstore.Store) objstore.Store {
	return &Faulty{Store: s, Fail: func(op, name string) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ops = append(r.ops, op+" "+name)
		return nil
	}}
}

// Ops returns the operations recorded so far.
func (r *Recorder) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}
