// Package deploy holds Ward's deployment files: the image's Dockerfiles,
// the Compose file and the systemd unit. Its tests check their security
// properties without a container runtime or systemd.
package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitKeys parses a systemd unit's Service section into key -> values.
func unitKeys(t *testing.T, text string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	text = strings.ReplaceAll(text, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not key=value", line)
		}
		if section == "[Service]" {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// The unit runs Ward under systemd's sandbox: no privileges, capabilities
// or writable paths beyond its state directory, a system-call filter.
func TestSystemdUnitHardening(t *testing.T) {
	keys := unitKeys(t, read(t, "ward.service"))
	for k, want := range map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ReadWritePaths":          "/var/lib/ward",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictNamespaces":      "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"SystemCallArchitectures": "native",
		"DynamicUser":             "yes",
		"UMask":                   "0077",
	} {
		got, ok := keys[k]
		if !ok || got[len(got)-1] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if f := keys["SystemCallFilter"]; !slices.Contains(f, "@system-service") || !slices.Contains(f, "~@privileged") {
		t.Errorf("SystemCallFilter = %q, want @system-service and ~@privileged", f)
	}
	exec := strings.Join(keys["ExecStart"], " ")
	for _, flag := range []string{"--data /var/lib/ward", "--tls-cert", "--tls-key", "--metrics-addr 127.0.0.1:"} {
		if !strings.Contains(exec, flag) {
			t.Errorf("ExecStart %q lacks %q", exec, flag)
		}
	}
	if strings.Contains(exec, "--dev") {
		t.Error("ExecStart runs in dev mode")
	}
}

// dockerfileFinal returns the instructions of a Dockerfile's last stage.
func dockerfileFinal(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			out = nil
		}
		out = append(out, line)
	}
	return out
}

// Both images run Ward as a non-root user from an image with no shell
// (distroless static or scratch), with /data the only volume, and an
// exec-form entrypoint that needs no shell; the full build is static.
func TestDockerfiles(t *testing.T) {
	for _, path := range []string{"../Dockerfile", "Dockerfile.local"} {
		text := read(t, path)
		final := dockerfileFinal(text)
		from := final[0]
		if from != "FROM scratch" && !strings.HasPrefix(from, "FROM gcr.io/distroless/static") {
			t.Errorf("%s: final stage %q has a shell or more than a static base", path, from)
		}
		var user, volumes, entry []string
		for _, ins := range final {
			switch cmd, arg, _ := strings.Cut(ins, " "); cmd {
			case "USER":
				user = append(user, arg)
			case "VOLUME":
				volumes = append(volumes, arg)
			case "ENTRYPOINT":
				entry = append(entry, arg)
			case "RUN", "SHELL", "CMD":
				if cmd != "CMD" || !strings.HasPrefix(arg, "[") {
					t.Errorf("%s: %q needs a shell in the final stage", path, ins)
				}
			}
		}
		if len(user) != 1 || !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user[0]) {
			t.Errorf("%s: USER %q, want one numeric non-root user", path, user)
		}
		if len(volumes) != 1 || volumes[0] != `["/data"]` {
			t.Errorf("%s: VOLUME %q, want only /data", path, volumes)
		}
		if len(entry) != 1 || !strings.HasPrefix(entry[0], `["/ward", "serve"`) || !strings.Contains(entry[0], `"--data", "/data"`) ||
			!strings.Contains(entry[0], `"0.0.0.0:8443"`) {
			t.Errorf("%s: ENTRYPOINT %q, want exec form running ward serve on 0.0.0.0 with --data /data", path, entry)
		}
		if !strings.Contains(text, "--chown=65532:65532") {
			t.Errorf("%s: /data is not owned by the non-root user", path)
		}
	}
	full := read(t, "../Dockerfile")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`} {
		if !strings.Contains(full, want) {
			t.Errorf("Dockerfile's build lacks %s", want)
		}
	}
}

// The Compose file runs every service read-only with no new privileges,
// and Ward with no capabilities, its database password in a secret file,
// and its metrics published on loopback only.
func TestCompose(t *testing.T) {
	text := read(t, "compose.yaml")
	services := regexp.MustCompile(`(?m)^  ([a-z]+):\n`).FindAllStringSubmatch(strings.SplitN(text, "\nvolumes:", 2)[0], -1)
	if len(services) != 3 {
		t.Fatalf("services %v, want ward, postgres, rsyslog", services)
	}
	blocks := regexp.MustCompile(`(?m)^  [a-z]+:\n`).Split(strings.SplitN(strings.SplitN(text, "\nservices:\n", 2)[1], "\nvolumes:", 2)[0], -1)[1:]
	for i, b := range blocks {
		name := services[i][1]
		for _, want := range []string{"read_only: true", "no-new-privileges:true"} {
			if !strings.Contains(b, want) {
				t.Errorf("service %s lacks %s", name, want)
			}
		}
		if name == "ward" {
			for _, want := range []string{"cap_drop: [ALL]", "ward-data:/data", "PGPASSFILE: /run/secrets/pgpass", `"127.0.0.1:9090:9090"`, "--siem-syslog=rsyslog:6514"} {
				if !strings.Contains(b, want) {
					t.Errorf("service ward lacks %s", want)
				}
			}
			if strings.Contains(b, "--dev") || regexp.MustCompile(`postgres://[^@\s]*:[^@\s]*@`).MatchString(b) {
				t.Error("service ward runs in dev mode or has a password in its database URL")
			}
		}
	}
}
