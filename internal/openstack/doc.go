// Package openstack is cairn's small client of an OpenStack cloud, on
// gophercloud: authentication (clouds.yaml, OS_* variables, or the
// appliance's configured user), project-scoped Cinder clients, bounded
// retries and waits for Cinder's status transitions.
//
// Glossary:
//   - Cloud: one set of credentials; hands out a Cinder client per project,
//     each on a token scoped to that project (or to a trust of it), so
//     that Cinder itself keeps projects apart.
//   - Trust: a Keystone trust from a user to the Cloud's user; under
//     WithTrust the Cloud's clients authenticate with the trust's scope
//     and act as that user in its project (clients cached per project
//     and trust). CreateTrust, CheckTrust and DeleteTrust manage them.
//   - Cinder: the block storage v3 API at microversion 3.54 (attachments
//     with a connector and an attach mode).
//   - Retry: every request answered 409 (a resource busy in a transition)
//     or 5xx is repeated with exponential backoff, a bounded number of
//     times; transport errors likewise, except for POST, which may have
//     been carried out.
//   - Wait: polling a volume or snapshot until it reaches a status; the
//     error of a timeout names the object, the status waited for and the
//     last status seen.
package openstack
