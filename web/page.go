package web

import (
	"html/template"
	"net/http"
)

// The pages use no inline script or style (the Content-Security-Policy
// forbids both) and no external assets; they work without JavaScript.

type indexData struct {
	Title   string
	User    string
	CSRF    string
	Cameras []CameraStatus
	Scripts []string
}

// indexPage lists the cameras. Each has a <video id="video-NAME"> for the
// live view, whose script (Options.Scripts) finds the CSRF token in
// <meta name="veil-csrf">.
var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="veil-csrf" content="{{.CSRF}}">
<title>{{.Title}}</title>
<link rel="stylesheet" href="/static/veil.css">
{{range .Scripts}}<script src="{{.}}" defer></script>
{{end}}</head>
<body>
<header>
<h1>{{.Title}}</h1>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><span>{{.User}}</span> <button type="submit">Log out</button></form>
</header>
<main>
{{range .Cameras}}<section class="camera" data-camera="{{.Name}}">
<h2>{{.Name}}</h2>
<video id="video-{{.Name}}" muted autoplay playsinline></video>
<dl>
<dt>Health</dt><dd class="{{if .Healthy}}ok{{else}}bad{{end}}">{{if .Healthy}}healthy{{else}}unhealthy{{end}}{{with .LastError}}: {{.}}{{end}}</dd>
<dt>FPS</dt><dd>{{printf "%.1f" .FPS}}</dd>
<dt>Viewers</dt><dd>{{.Viewers}}</dd>
</dl>
</section>
{{else}}<p>No cameras.</p>
{{end}}</main>
</body>
</html>
`))

type loginData struct {
	Title   string
	Message string
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}: log in</title>
<link rel="stylesheet" href="/static/veil.css">
</head>
<body>
<main class="login">
<h1>{{.Title}}</h1>
{{with .Message}}<p class="bad" role="alert">{{.}}</p>
{{end}}<form method="post" action="/login">
<label>User <input name="user" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
`))

func (s *Server) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, loginData{Title: s.title, Message: msg}); err != nil {
		s.log.Warn("rendering login page", "err", err)
	}
}

const css = `body{font-family:system-ui,sans-serif;margin:1rem;background:#f6f6f6;color:#111}
header{display:flex;justify-content:space-between;align-items:center}
main{display:flex;flex-wrap:wrap;gap:1rem}
.camera{background:#fff;padding:.5rem 1rem;border-radius:4px}
video{width:480px;max-width:100%;background:#000;aspect-ratio:4/3}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem}
.ok{color:#060}.bad{color:#a00}
.login{flex-direction:column;max-width:20rem}
label{display:block;margin:.5rem 0}
`

func serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write([]byte(css))
}
