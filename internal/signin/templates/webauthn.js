// Ward sign-in: security keys and passkeys (WebAuthn).
//
// The page carries the ceremony's options as JSON in a data attribute of
// its form: data-webauthn-create (registration) or data-webauthn-get
// (sign-in), as the server's WebAuthn library wrote them ({"publicKey":
// ...}, binary values base64url). A click on the form's button runs
// navigator.credentials.create or get, puts the resulting credential as
// JSON (binary values base64url) into the form's "webauthn" field and
// submits the form, which carries the CSRF token. Without this script, or
// without WebAuthn in the browser, the button stays hidden and the page's
// code form works alone. The page's Content-Security-Policy allows this
// file and no other script; it uses no eval and writes no HTML.
(function () {
  "use strict";

  var form = document.querySelector("form[data-webauthn-create], form[data-webauthn-get]");
  if (!form || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  var creating = form.hasAttribute("data-webauthn-create");
  var button = form.querySelector("button");
  var problem = document.getElementById("webauthn-error");
  var options;
  try {
    options = JSON.parse(form.getAttribute(creating ? "data-webauthn-create" : "data-webauthn-get")).publicKey;
  } catch (e) {
    return;
  }

  function bytes(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function text(buf) {
    if (!buf) {
      return undefined;
    }
    var b = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < b.length; i++) {
      bin += String.fromCharCode(b[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: bytes(d.id), transports: d.transports };
    });
  }

  function publicKey() {
    var pk = Object.assign({}, options, { challenge: bytes(options.challenge) });
    if (creating) {
      pk.user = Object.assign({}, options.user, { id: bytes(options.user.id) });
      pk.excludeCredentials = descriptors(options.excludeCredentials);
    } else {
      pk.allowCredentials = descriptors(options.allowCredentials);
    }
    return pk;
  }

  function encode(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: text(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: text(r.clientDataJSON) }
    };
    if (creating) {
      out.response.attestationObject = text(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : undefined;
    } else {
      out.response.authenticatorData = text(r.authenticatorData);
      out.response.signature = text(r.signature);
      out.response.userHandle = text(r.userHandle);
    }
    return out;
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    if (problem) {
      problem.hidden = true;
    }
    var ceremony = creating
      ? navigator.credentials.create({ publicKey: publicKey() })
      : navigator.credentials.get({ publicKey: publicKey() });
    ceremony.then(function (cred) {
      form.querySelector("input[name=webauthn]").value = JSON.stringify(encode(cred));
      // The prototype's submit: a field named or id'd "submit" (the
      // signing form's button) hides the form's own.
      HTMLFormElement.prototype.submit.call(form);
    }, function (err) {
      button.disabled = false;
      if (problem) {
        problem.textContent = "The security key or passkey did not answer (" + err.name + "). Try again, or use a code.";
        problem.hidden = false;
      }
    });
  });
})();
