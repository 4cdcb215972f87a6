package fence

import "github.com/pgnoded/pgnoded/internal/ha"

// Client is what the HA loop uses as its fencing guard.
var _ ha.Fence = (*Client)(nil)
