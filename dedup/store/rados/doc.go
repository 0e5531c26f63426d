// Package rados is a shard store (store.Store) over a Ceph RADOS pool,
// through librados (go-ceph). Everything here except this comment is built
// only with the build tag "ceph" (plus "pacific" for go-ceph against Ceph
// 16), so that the rest of cairn builds without cgo.
//
// One Conn (a librados cluster handle) is shared by the k+m stores of a
// repository. Each Store is a pool, an optional RADOS namespace and a name
// prefix: store name N is RADOS object Prefix+N, so several shard indices
// (prefixes "s0/", "s1/", …) can share one pool and namespace.
//
// How the store.Store contract maps onto RADOS:
//
//   - Put is one write_full operation, which RADOS applies atomically and
//     durably (acknowledged once every replica has it).
//   - Get reads the whole object in one read operation, so it never mixes
//     two versions; ReadAt is one ranged read.
//   - List iterates the namespace (a walk over every placement group of the
//     pool) and keeps the names under the store's prefix; sizes come from a
//     Stat per object, a few in flight at a time.
//   - librados calls take no context: each method checks ctx before and
//     after its blocking call, so a canceled call may have completed.
package rados
