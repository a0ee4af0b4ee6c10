// Package deploy holds no code: its tests check that the deployment files beside it (the
// systemd unit, the container file, the Kubernetes manifests) agree with livegate and with
// each other. docs/operations.md ("Deployment") explains the files; `make deploy-check` runs
// these tests and the manifests' schema check.
package deploy
