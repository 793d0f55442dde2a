/*
 * Test stand-in for a Jitsi Meet server's /external_api.js (the IFrame API), written for these
 * tests. Like the real one, `new JitsiMeetExternalAPI(domain, options)` appends to
 * options.parentNode an iframe loading https://<domain>/<roomName>, with the options passed in
 * the URL fragment (jitsi_meet_external_api_id, userInfo.displayName, config.*), named and with
 * the permissions a meeting needs; dispose() removes it.
 */
(function () {
  'use strict';
  var nextId = 0;

  function size(value) {
    if (value === undefined) {
      return '100%';
    }
    return typeof value === 'number' ? value + 'px' : String(value);
  }

  function JitsiMeetExternalAPI(domain, options) {
    options = options || {};
    this.id = nextId++;
    var fragment = ['jitsi_meet_external_api_id=' + this.id];
    var user = options.userInfo || {};
    ['displayName', 'email'].forEach(function (key) {
      if (user[key] !== undefined) {
        fragment.push('userInfo.' + key + '=' + encodeURIComponent(JSON.stringify(user[key])));
      }
    });
    var overwrite = options.configOverwrite || {};
    Object.keys(overwrite).forEach(function (key) {
      fragment.push('config.' + key + '=' + encodeURIComponent(JSON.stringify(overwrite[key])));
    });
    var frame = document.createElement('iframe');
    frame.src = 'https://' + domain + '/' + (options.roomName || '') + '#' + fragment.join('&');
    frame.name = frame.id = 'jitsiConferenceFrame' + this.id;
    frame.allow = 'camera; microphone; display-capture; autoplay; clipboard-write; hid; screen-wake-lock';
    frame.setAttribute('allowFullScreen', 'true');
    frame.style.border = '0';
    frame.style.width = size(options.width);
    frame.style.height = size(options.height);
    (options.parentNode || document.body).appendChild(frame);
    this._frame = frame;
    this._listeners = {};
    window.__jitsiStandIn = window.__jitsiStandIn || { created: [], disposed: [] };
    window.__jitsiStandIn.created.push({ domain: domain, roomName: options.roomName });
  }

  JitsiMeetExternalAPI.prototype.addListener = function (event, listener) {
    (this._listeners[event] = this._listeners[event] || []).push(listener);
  };
  JitsiMeetExternalAPI.prototype.on = JitsiMeetExternalAPI.prototype.addListener;
  JitsiMeetExternalAPI.prototype.removeListener = function (event, listener) {
    this._listeners[event] = (this._listeners[event] || []).filter(function (l) {
      return l !== listener;
    });
  };
  JitsiMeetExternalAPI.prototype.executeCommand = function () {};
  JitsiMeetExternalAPI.prototype.getIFrame = function () {
    return this._frame;
  };
  JitsiMeetExternalAPI.prototype.dispose = function () {
    window.__jitsiStandIn.disposed.push(this._frame.src);
    if (this._frame.parentNode) {
      this._frame.parentNode.removeChild(this._frame);
    }
  };

  window.JitsiMeetExternalAPI = JitsiMeetExternalAPI;
})();
