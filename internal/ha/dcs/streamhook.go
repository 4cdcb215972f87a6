package dcs

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"
)

// watchMethod is etcd's Watch RPC: one bidirectional stream per clientv3 watch stream.
const watchMethod = "/etcdserverpb.Watch/Watch"

// watchStreamHook tells the Store when clientv3 opens a Watch stream. clientv3
// resumes a failed watch stream on another member by itself, and swallows the
// new stream's created notification, so without this the Store would go on
// taking the old member for the watch's (see confirmKeepAlive).
type watchStreamHook struct {
	opened atomic.Pointer[func()]
}

// set installs what runs after each Watch stream opens.
func (h *watchStreamHook) set(f func()) { h.opened.Store(&f) }

// intercept is a gRPC stream interceptor: it opens the stream, then reports
// it. It runs before clientv3 sends the stream's first watch request, so
// before any answer can name the stream's member.
func (h *watchStreamHook) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if method == watchMethod {
		if f := h.opened.Load(); f != nil {
			(*f)()
		}
	}
	return cs, err
}
