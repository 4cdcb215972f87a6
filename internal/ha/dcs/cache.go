package dcs

import (
	"bytes"
	"strings"
	"time"
)

// entry is one key as etcd holds it.
type entry struct {
	value  []byte
	modRev int64
	lease  int64
}

// cache is the in-memory copy of the keys under the base path, by relative key.
// Versions are applied only when newer than what it holds, so the watch
// re-delivering this node's own writes (or an older event arriving after a
// newer read) never moves it backwards. Deletions leave a tombstone until the
// watch has passed their revision.
type cache struct {
	entries map[string]entry
	tombs   map[string]int64 // relative key -> revision at which it was known absent
	rev     int64            // highest revision seen
	readAt  time.Time        // last time the cache was confirmed current
	// heldUntil: the watch's staleness check is quiet until then; each
	// confirmation holds it for watchHold (longer after a keepalive).
	heldUntil time.Time
	ready     bool   // the first full read has completed
	gen       uint64 // bumped on every change of entries (View rebuilds only then)
	// watchRev: every change up to this revision is in the cache (a full
	// read, watch events in order, a progress notification). Own writes'
	// revisions do not count: the watch may not have delivered older ones yet.
	watchRev int64
}

func newCache() cache {
	return cache{entries: map[string]entry{}, tombs: map[string]int64{}}
}

// put applies a key version; it reports whether the Store's wake-up should fire.
func (c *cache) put(rel string, e entry) (significant bool) {
	c.rev = max(c.rev, e.modRev)
	old, had := c.entries[rel]
	if had && old.modRev >= e.modRev {
		return false
	}
	if t, ok := c.tombs[rel]; ok && t >= e.modRev {
		return false
	}
	delete(c.tombs, rel)
	c.entries[rel] = e
	c.gen++
	return significantChange(rel, old, had, e, true)
}

// del records that rel was absent at revision rev.
func (c *cache) del(rel string, rev int64) (significant bool) {
	c.rev = max(c.rev, rev)
	old, had := c.entries[rel]
	if had && old.modRev > rev {
		return false // a newer version (e.g. our own re-create) is already applied
	}
	if t, ok := c.tombs[rel]; !ok || t < rev {
		c.tombs[rel] = rev
	}
	if !had {
		return false
	}
	delete(c.entries, rel)
	c.gen++
	return significantChange(rel, old, true, entry{}, false)
}

// dropLease deletes every entry attached to lease id (etcd removed them with
// the lease); it reports whether the Store's wake-up should fire.
func (c *cache) dropLease(id int64) (significant bool) {
	if id == 0 {
		return false
	}
	for rel, e := range c.entries {
		if e.lease == id && c.del(rel, c.rev) {
			significant = true
		}
	}
	return significant
}

// replace installs a full read taken at revision rev, keeping any newer
// versions already applied (own writes that raced with the read).
func (c *cache) replace(fresh map[string]entry, rev int64) {
	next := make(map[string]entry, len(fresh))
	for k, e := range fresh {
		next[k] = e
	}
	for k, e := range c.entries {
		if e.modRev > rev {
			next[k] = e
		}
	}
	tombs := map[string]int64{}
	for k, t := range c.tombs {
		if t > rev {
			tombs[k] = t
			if e, ok := next[k]; ok && e.modRev <= t {
				delete(next, k)
			}
		}
	}
	c.entries, c.tombs = next, tombs
	c.rev = max(c.rev, rev)
	c.watchRev = max(c.watchRev, rev)
	c.gen++
}

// prune forgets tombstones the watch has passed.
func (c *cache) prune(watchRev int64) {
	for k, t := range c.tombs {
		if t <= watchRev {
			delete(c.tombs, k)
		}
	}
}

// significantChange decides whether a change of rel wakes the HA loop: the
// leader key (value or lease), the cluster-wide keys on any value change,
// members when they join or leave or change a field a waiting decision looks
// at (cluster.Member.WakeFields: role, state, ...), not on a mere xlog_location update.
func significantChange(rel string, old entry, had bool, cur entry, has bool) bool {
	switch {
	case rel == KeyLeader:
		return had != has || !bytes.Equal(old.value, cur.value) || old.lease != cur.lease
	case rel == KeyConfig, rel == KeyFailover, rel == KeySync, rel == KeyStatus, rel == KeyInitialize,
		rel == KeyFailsafe, rel == KeyHistory, rel == KeyOptimeLeader:
		return had != has || !bytes.Equal(old.value, cur.value)
	case strings.HasPrefix(rel, KeyMembers):
		if memberName(rel) == "" {
			return false
		}
		return had != has || !bytes.Equal(old.value, cur.value) &&
			parseMember(old.value).WakeFields() != parseMember(cur.value).WakeFields()
	}
	return false
}
