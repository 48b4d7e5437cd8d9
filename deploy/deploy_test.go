package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/metrics"
	"gopkg.in/yaml.v3"
)

// graceMargin is what a worker's grace period adds to its shutdown timeout:
// time to record the outcomes of the calls that finished and close.
const graceMargin = 10 * time.Second

// serveShutdown is serve's --shutdown-timeout default.
const serveShutdown = 30 * time.Second

// obj is a decoded YAML or JSON object.
type obj = map[string]any

// get walks a path of keys and list indexes; nil when any step is missing.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...any) []any { l, _ := get(v, path...).([]any); return l }
func num(v any, path ...any) (int, bool) {
	switch n := get(v, path...).(type) {
	case int:
		return n, true
	case float64:
		return int(n), true
	}
	return 0, false
}

// decodeAll decodes every YAML document of a file.
func decodeAll(t *testing.T, path string) []obj {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// manifests are the Kubernetes objects kustomization.yaml lists, by
// "Kind/name".
func manifests(t *testing.T) map[string]obj {
	t.Helper()
	k := decodeAll(t, "k8s/kustomization.yaml")
	if len(k) != 1 || str(k[0], "kind") != "Kustomization" {
		t.Fatalf("k8s/kustomization.yaml: want one Kustomization, got %v", k)
	}
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range list(k[0], "resources") {
		listed = append(listed, "k8s/"+r.(string))
	}
	for _, f := range files {
		if f != "k8s/kustomization.yaml" && !slices.Contains(listed, f) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", f)
		}
	}
	objs := map[string]obj{}
	for _, f := range listed {
		for _, d := range decodeAll(t, f) {
			key := str(d, "kind") + "/" + str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || str(d, "metadata", "name") == "" {
				t.Errorf("%s: an object without apiVersion or name: %v", f, d)
			}
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s is defined twice", f, key)
			}
			objs[key] = d
		}
	}
	return objs
}

func mustObj(t *testing.T, objs map[string]obj, key string) obj {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		keys := make([]string, 0, len(objs))
		for k := range objs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("no %s among the manifests (%s)", key, strings.Join(keys, ", "))
	}
	return o
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels any) bool {
	s, _ := sel.(obj)
	l, _ := labels.(obj)
	if len(s) == 0 {
		return false
	}
	for k, v := range s {
		if l[k] != v {
			return false
		}
	}
	return true
}

// portOf returns the port of a listen address such as ":8080".
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// containerPort resolves a probe's or Service's port (a name or a number)
// to a port the container declares; 0 when it declares none such.
func containerPort(c obj, port any) int {
	for _, p := range list(c, "ports") {
		n, _ := num(p, "containerPort")
		switch v := port.(type) {
		case string:
			if str(p, "name") == v {
				return n
			}
		case int:
			if n == v {
				return n
			}
		}
	}
	return 0
}

// checkWorkload checks what every Deployment must have and returns its one
// container.
func checkWorkload(t *testing.T, d obj, cm obj, secret obj, secretEnv ...string) obj {
	t.Helper()
	name := str(d, "metadata", "name")
	spec := get(d, "spec", "template", "spec")
	if !subset(get(d, "spec", "selector", "matchLabels"), get(d, "spec", "template", "metadata", "labels")) {
		t.Errorf("%s: the selector does not match the pod labels", name)
	}
	cs := list(spec, "containers")
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, got %d", name, len(cs))
	}
	c := cs[0].(obj)
	if get(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if uid, ok := num(spec, "securityContext", "runAsUser"); !ok || uid == 0 {
		t.Errorf("%s: pod securityContext.runAsUser = %v, want a non-zero uid", name, get(spec, "securityContext", "runAsUser"))
	}
	if get(c, "securityContext", "allowPrivilegeEscalation") != false || get(c, "securityContext", "readOnlyRootFilesystem") != true ||
		!slices.Contains(list(c, "securityContext", "capabilities", "drop"), any("ALL")) {
		t.Errorf("%s: the container's securityContext must forbid privilege escalation, mount the root read-only and drop ALL capabilities: %v", name, get(c, "securityContext"))
	}
	if str(spec, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: no RuntimeDefault seccomp profile", name)
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, r := range []string{"cpu", "memory"} {
			if get(c, "resources", kind, r) == nil {
				t.Errorf("%s: no resources.%s.%s", name, kind, r)
			}
		}
	}
	for probe, path := range map[string]string{"livenessProbe": metrics.PathHealthz, "readinessProbe": metrics.PathReadyz} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s: %s path %q, want %q", name, probe, got, path)
		}
		if containerPort(c, get(c, probe, "httpGet", "port")) == 0 {
			t.Errorf("%s: %s port %v is not a port of the container", name, probe, get(c, probe, "httpGet", "port"))
		}
	}
	if !slices.ContainsFunc(list(c, "envFrom"), func(e any) bool { return str(e, "configMapRef", "name") == str(cm, "metadata", "name") }) {
		t.Errorf("%s: does not take its environment from ConfigMap %s", name, str(cm, "metadata", "name"))
	}
	for _, v := range secretEnv {
		i := slices.IndexFunc(list(c, "env"), func(e any) bool { return str(e, "name") == v })
		if i < 0 {
			t.Errorf("%s: no %s in env", name, v)
			continue
		}
		e := list(c, "env")[i]
		ref, key := str(e, "valueFrom", "secretKeyRef", "name"), str(e, "valueFrom", "secretKeyRef", "key")
		if ref != str(secret, "metadata", "name") || get(secret, "stringData", key) == nil {
			t.Errorf("%s: %s is not taken from a key of Secret %s (secretKeyRef %s/%s)", name, v, str(secret, "metadata", "name"), ref, key)
		}
		if get(cm, "data", v) != nil {
			t.Errorf("%s is in the ConfigMap too: secrets belong in the Secret only", v)
		}
	}
	return c
}

func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	cm := mustObj(t, objs, "ConfigMap/orgconn")
	secret := mustObj(t, objs, "Secret/orgconn")
	mustObj(t, objs, "Namespace/orgconn")

	// Worker.
	wd := mustObj(t, objs, "Deployment/orgconn-worker")
	wc := checkWorkload(t, wd, cm, secret, "REDIS_URL", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "ORGCONN_METRICS_TOKEN")
	if a := list(wc, "args"); len(a) == 0 || a[0] != "worker" {
		t.Errorf("worker container args %v, want the worker command", a)
	}
	want := int((worker.DefaultShutdownTimeout + graceMargin).Seconds())
	if g, _ := num(wd, "spec", "template", "spec", "terminationGracePeriodSeconds"); g != want {
		t.Errorf("worker terminationGracePeriodSeconds = %d, want %d (the worker's %v shutdown timeout + %v)", g, want, worker.DefaultShutdownTimeout, graceMargin)
	}
	metricsPort := portOf(t, str(cm, "data", "ORGCONN_METRICS_ADDR"))
	// The worker's own default is loopback only: in a pod, the probes and
	// Prometheus need every interface, asked for explicitly.
	if host, _, _ := net.SplitHostPort(str(cm, "data", "ORGCONN_METRICS_ADDR")); host != "" && host != "0.0.0.0" {
		t.Errorf("ORGCONN_METRICS_ADDR %q: the kubelet's probes cannot reach %s", str(cm, "data", "ORGCONN_METRICS_ADDR"), host)
	}
	if containerPort(wc, "metrics") != metricsPort {
		t.Errorf("worker port \"metrics\" = %d, ORGCONN_METRICS_ADDR listens on %d", containerPort(wc, "metrics"), metricsPort)
	}
	if p := str(wd, "spec", "template", "metadata", "annotations", "prometheus.io/port"); p != strconv.Itoa(metricsPort) {
		t.Errorf("worker prometheus.io/port annotation %q, want %d", p, metricsPort)
	}
	pdb := mustObj(t, objs, "PodDisruptionBudget/orgconn-worker")
	if !subset(get(pdb, "spec", "selector", "matchLabels"), get(wd, "spec", "template", "metadata", "labels")) ||
		!subset(get(wd, "spec", "selector", "matchLabels"), get(pdb, "spec", "selector", "matchLabels")) {
		t.Errorf("the worker PDB's selector %v does not select exactly the worker pods %v", get(pdb, "spec", "selector"), get(wd, "spec", "selector"))
	}
	if n, ok := num(pdb, "spec", "minAvailable"); !ok || n < 1 {
		t.Errorf("worker PDB minAvailable = %v", get(pdb, "spec", "minAvailable"))
	}
	if r, _ := num(wd, "spec", "replicas"); r <= 1 {
		t.Errorf("worker replicas = %d: a PDB with minAvailable 1 would block every drain", r)
	}

	// Serve and its Service.
	sd := mustObj(t, objs, "Deployment/orgconn-serve")
	sc := checkWorkload(t, sd, cm, secret, "REDIS_URL", "ORGCONN_WEBHOOK_SECRET", "ORGCONN_METRICS_TOKEN")
	if a := list(sc, "args"); len(a) == 0 || a[0] != "serve" {
		t.Errorf("serve container args %v, want the serve command", a)
	}
	if g, _ := num(sd, "spec", "template", "spec", "terminationGracePeriodSeconds"); g <= int(serveShutdown.Seconds()) {
		t.Errorf("serve terminationGracePeriodSeconds = %d, want more than its %v shutdown timeout", g, serveShutdown)
	}
	servePort := portOf(t, str(cm, "data", "ORGCONN_ADDR"))
	svc := mustObj(t, objs, "Service/orgconn-serve")
	if !subset(get(svc, "spec", "selector"), get(sd, "spec", "template", "metadata", "labels")) {
		t.Errorf("Service orgconn-serve's selector %v does not select the serve pods", get(svc, "spec", "selector"))
	}
	if subset(get(svc, "spec", "selector"), get(wd, "spec", "template", "metadata", "labels")) {
		t.Error("Service orgconn-serve selects the worker pods too")
	}
	ports := list(svc, "spec", "ports")
	if len(ports) == 0 {
		t.Fatal("Service orgconn-serve has no port")
	}
	for _, p := range ports {
		if got := containerPort(sc, get(p, "targetPort")); got != servePort {
			t.Errorf("Service port %v targets container port %d; serve listens on %d (ORGCONN_ADDR)", get(p, "port"), got, servePort)
		}
	}
	// The worker and serve must not share pod labels (PDBs, Services).
	if subset(get(wd, "spec", "selector", "matchLabels"), get(sd, "spec", "template", "metadata", "labels")) {
		t.Error("the worker's selector also selects serve pods")
	}
	for _, v := range []string{"AUTH0_CLIENT_SECRET", "ORGCONN_WEBHOOK_SECRET", "REDIS_URL"} {
		if s := str(secret, "stringData", v); !strings.Contains(s, "REPLACE_ME") {
			t.Errorf("the Secret's %s is not a placeholder", v)
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var user, entrypoint string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, line)
			user = "" // USER applies to its stage
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(froms))
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") && !strings.Contains(final, "scratch") {
		t.Errorf("runtime stage %q: want distroless static or scratch", final)
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root uid (Kubernetes checks runAsNonRoot against it)", user)
	} else {
		objs := manifests(t)
		for _, d := range []string{"Deployment/orgconn-worker", "Deployment/orgconn-serve"} {
			if got, _ := num(objs[d], "spec", "template", "spec", "securityContext", "runAsUser"); got != n {
				t.Errorf("%s runs as uid %d, the image as %d", d, got, n)
			}
		}
	}
	if !strings.Contains(entrypoint, "orgconn") {
		t.Errorf("ENTRYPOINT %q does not run orgconn", entrypoint)
	}
}

// metricRefs returns the orgconn_ metric names in s, histogram series
// (_bucket, _sum, _count) mapped to their histogram's name.
func metricRefs(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\borgconn_[a-zA-Z0-9_]+`).FindAllString(s, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(metrics.Histograms, base) {
				m = base
			}
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func checkRefs(t *testing.T, where, s string) []string {
	t.Helper()
	refs := metricRefs(s)
	for _, r := range refs {
		if !slices.Contains(metrics.Names, r) {
			t.Errorf("%s refers to %s, which orgconn does not register (metrics.Names)", where, r)
		}
	}
	return refs
}

func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a severity label and summary and description annotations", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			if len(checkRefs(t, r.Alert+" expr", r.Expr)) == 0 {
				t.Errorf("%s: the expression uses no orgconn metric: %q", r.Alert, r.Expr)
			}
			for k, a := range r.Annotations {
				checkRefs(t, r.Alert+" "+k, a)
			}
		}
	}
	for _, want := range []string{"OrgconnDeadLettersIncreasing", "OrgconnAPIThrottlingHigh", "OrgconnQueueNotDraining", "OrgconnNoWorkers"} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/orgconn.json")
	if err != nil {
		t.Fatal(err)
	}
	var d obj
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("orgconn.json: %v", err)
	}
	if str(d, "uid") == "" || str(d, "title") == "" {
		t.Error("the dashboard has no uid or title")
	}
	type box struct {
		title      string
		x, y, w, h int
	}
	var boxes []box
	used := map[string]bool{}
	for _, p := range list(d, "panels") {
		title := str(p, "title")
		var b box
		b.title = title
		b.x, _ = num(p, "gridPos", "x")
		b.y, _ = num(p, "gridPos", "y")
		b.w, _ = num(p, "gridPos", "w")
		b.h, _ = num(p, "gridPos", "h")
		if b.w == 0 || b.h == 0 || b.x+b.w > 24 {
			t.Errorf("panel %q: gridPos %v", title, get(p, "gridPos"))
		}
		for _, o := range boxes {
			if b.x < o.x+o.w && o.x < b.x+b.w && b.y < o.y+o.h && o.y < b.y+b.h {
				t.Errorf("panels %q and %q overlap", o.title, title)
			}
		}
		boxes = append(boxes, b)
		if str(p, "type") == "row" {
			continue
		}
		targets := list(p, "targets")
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			expr := str(tg, "expr")
			refs := checkRefs(t, fmt.Sprintf("panel %q", title), expr)
			if len(refs) == 0 {
				t.Errorf("panel %q: query %q uses no orgconn metric", title, expr)
			}
			for _, r := range refs {
				used[r] = true
			}
		}
	}
	checkRefs(t, "the dashboard", string(data)) // variables, descriptions
	for _, n := range metrics.Names {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

func TestCompose(t *testing.T) {
	docs := decodeAll(t, "../docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents", len(docs))
	}
	services, _ := get(docs[0], "services").(obj)
	for _, s := range []string{"redis", "simulator", "worker", "serve", "asynqmon", "import"} {
		if services[s] == nil {
			t.Errorf("no service %s", s)
		}
	}
	for name, s := range services {
		if str(s, "image") == "" && get(s, "build") == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		switch dep := get(s, "depends_on").(type) {
		case obj:
			for other := range dep {
				if services[other] == nil {
					t.Errorf("service %s depends on %s, which is not a service", name, other)
				}
			}
		case []any:
			for _, other := range dep {
				if services[other.(string)] == nil {
					t.Errorf("service %s depends on %v, which is not a service", name, other)
				}
			}
		}
	}
	// hostPort checks that a URL names a service of the file and returns its
	// port.
	hostPort := func(what, raw string) int {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil || services[u.Hostname()] == nil {
			t.Errorf("%s %q does not name a service", what, raw)
			return 0
		}
		p, _ := strconv.Atoi(u.Port())
		return p
	}
	w := services["worker"]
	if n, _ := num(w, "deploy", "replicas"); n != 2 {
		t.Errorf("worker replicas = %d, want 2", n)
	}
	grace, err := time.ParseDuration(str(w, "stop_grace_period"))
	if want := worker.DefaultShutdownTimeout + graceMargin; err != nil || grace != want {
		t.Errorf("worker stop_grace_period %q, want %v (the worker's shutdown timeout + %v)", str(w, "stop_grace_period"), want, graceMargin)
	}
	if slices.Contains([]string{"", "0"}, str(w, "environment", "AUTH0_CLIENT_SECRET")) {
		t.Error("the worker has no credentials for the simulator")
	}
	simCmd := list(services["simulator"], "command")
	simAddr := ""
	for i, a := range simCmd {
		if a == "--addr" && i+1 < len(simCmd) {
			simAddr = simCmd[i+1].(string)
		}
	}
	if p := hostPort("worker AUTH0_DOMAIN", str(w, "environment", "AUTH0_DOMAIN")); p != portOf(t, simAddr) {
		t.Errorf("the worker calls the simulator on port %d, it listens on %q", p, simAddr)
	}
	for _, s := range []string{"worker", "serve"} {
		if hostPort(s+" REDIS_URL", str(services[s], "environment", "REDIS_URL")) != 6379 {
			t.Errorf("%s REDIS_URL does not use port 6379", s)
		}
	}
	if hostPort("the import tool's REDIS_URL (from x-orgconn)", str(services["import"], "environment", "REDIS_URL")) != 6379 {
		t.Error("import REDIS_URL does not use port 6379")
	}
	if host, _, _ := net.SplitHostPort(str(w, "environment", "ORGCONN_METRICS_ADDR")); host != "" && host != "0.0.0.0" {
		t.Errorf("worker ORGCONN_METRICS_ADDR %q: other containers cannot reach it", str(w, "environment", "ORGCONN_METRICS_ADDR"))
	}
	serve := services["serve"]
	for name, s := range map[string]any{"worker": w, "serve": serve} {
		if tok := str(s, "environment", "ORGCONN_METRICS_TOKEN"); tok != "" && len(tok) < 16 {
			t.Errorf("%s ORGCONN_METRICS_TOKEN is shorter than 16 characters: it would refuse to start", name)
		}
	}
	if len(str(serve, "environment", "ORGCONN_WEBHOOK_SECRET")) < 16 {
		t.Error("serve has no webhook secret of at least 16 characters: it would refuse to start")
	}
	servePort := portOf(t, str(serve, "environment", "ORGCONN_ADDR"))
	published := false
	for _, p := range list(serve, "ports") {
		parts := strings.Split(p.(string), ":")
		if c, _ := strconv.Atoi(parts[len(parts)-1]); c == servePort {
			published = true
		}
	}
	if !published {
		t.Errorf("serve listens on %d but publishes %v", servePort, list(serve, "ports"))
	}
	mon := services["asynqmon"]
	if !strings.HasPrefix(str(mon, "image"), "hibiken/asynqmon") {
		t.Errorf("asynqmon image %q", str(mon, "image"))
	}
	redisURL := ""
	for _, a := range list(mon, "command") {
		if v, ok := strings.CutPrefix(a.(string), "--redis-url="); ok {
			redisURL = v
		}
	}
	hostPort("asynqmon --redis-url", redisURL)
}
