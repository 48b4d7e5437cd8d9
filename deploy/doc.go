// Package deploy holds orgconn's deployment files: the Dockerfile, the
// Kubernetes manifests (k8s/), the Prometheus alert rules (prometheus/) and
// the Grafana dashboard (grafana/). It has no code; its tests decode every
// file and check it against the code: probes, grace periods, ports, secrets
// and the metric names the processes register (metrics.Names).
package deploy
