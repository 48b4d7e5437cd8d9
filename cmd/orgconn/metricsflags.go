package main

import (
	"fmt"
	"os"
	"strings"
)

// defaultMetricsAddr is where a worker serves /metrics, /healthz and /readyz
// unless told otherwise: loopback only, on the port OpenTelemetry's
// Prometheus exporter uses (9464), not Prometheus' own 9090. When another
// worker on this machine holds it, the worker falls back to a free loopback
// port and logs it (serveMetrics).
const defaultMetricsAddr = "127.0.0.1:9464"

// metricsTokenFlags is the optional bearer token that protects /metrics.
type metricsTokenFlags struct {
	file string
}

func (f *flags) withMetricsToken() *metricsTokenFlags {
	m := &metricsTokenFlags{}
	f.StringVar(&m.file, "metrics-token-file", "", "file holding a bearer token that GET /metrics must carry (Authorization: Bearer …); "+
		"or set env ORGCONN_METRICS_TOKEN (or ORGCONN_METRICS_TOKEN_FILE); none: /metrics is open")
	return m
}

// token reads the metrics token from --metrics-token-file or the
// environment; "" means none. Errors never show the token.
func (m *metricsTokenFlags) token(e *env) (string, error) {
	fromEnv, err := secret(e, "ORGCONN_METRICS_TOKEN")
	if err != nil {
		return "", err
	}
	tok := fromEnv
	if m.file != "" {
		if fromEnv != "" {
			return "", fmt.Errorf("both --metrics-token-file and ORGCONN_METRICS_TOKEN (or ORGCONN_METRICS_TOKEN_FILE) are set: use one")
		}
		data, err := os.ReadFile(m.file)
		if err != nil {
			return "", fmt.Errorf("--metrics-token-file: %w", err)
		}
		if tok = strings.TrimSpace(string(data)); tok == "" {
			return "", fmt.Errorf("--metrics-token-file %s is empty", m.file)
		}
	}
	if tok != "" && len(tok) < minSecretLength {
		return "", fmt.Errorf("the metrics token is shorter than %d characters (openssl rand -hex 32 makes a good one)", minSecretLength)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("the metrics token holds white space: a bearer token cannot")
	}
	return tok, nil
}
