"use strict";(self.rspackChunkjupyterlab_qhub_videochat=self.rspackChunkjupyterlab_qhub_videochat||[]).push([[700],{16(e,t,r){var n=r(17),o=r.n(n),a=r(18),i=(r.n(a))()(o());i.push([e.id,`.jp-QHubVideoChat {
  display: flex;
  flex-direction: column;
  min-width: 320px;
  min-height: 240px;
  background: var(--jp-layout-color1);
}

.jp-QHubVideoChat-bar {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 4px;
  padding: 4px 8px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}

.jp-QHubVideoChat-adhoc {
  display: flex;
  gap: 4px;
  margin-left: auto;
}

.jp-QHubVideoChat-status {
  padding: 2px 8px;
  font-size: var(--jp-ui-font-size0);
  color: var(--jp-ui-font-color2);
  min-height: 1.5em;
}

.jp-QHubVideoChat-status.jp-mod-error {
  color: var(--jp-error-color1);
}

.jp-QHubVideoChat-meeting {
  flex: 1 1 auto;
  position: relative;
  min-height: 0;
}

.jp-QHubVideoChat-meeting > iframe {
  border: 0;
  display: block;
}

.jp-QHubVideoChat-hint {
  padding: 16px;
  color: var(--jp-ui-font-color2);
}
`,""]),r.d(t,{},{A:i})},18(e){e.exports=function(e){var t=[];return t.toString=function(){return this.map(function(t){var r="",n=void 0!==t[5];return t[4]&&(r+="@supports (".concat(t[4],") {")),t[2]&&(r+="@media ".concat(t[2]," {")),n&&(r+="@layer".concat(t[5].length>0?" ".concat(t[5]):""," {")),r+=e(t),n&&(r+="}"),t[2]&&(r+="}"),t[4]&&(r+="}"),r}).join("")},t.i=function(e,r,n,o,a){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(n)for(var c=0;c<this.length;c++){var s=this[c][0];null!=s&&(i[s]=!0)}for(var p=0;p<e.length;p++){var u=[].concat(e[p]);n&&i[u[0]]||(void 0!==a&&(void 0===u[5]||(u[1]="@layer".concat(u[5].length>0?" ".concat(u[5]):""," {").concat(u[1],"}")),u[5]=a),r&&(u[2]&&(u[1]="@media ".concat(u[2]," {").concat(u[1],"}")),u[2]=r),o&&(u[4]?(u[1]="@supports (".concat(u[4],") {").concat(u[1],"}"),u[4]=o):u[4]="".concat(o)),t.push(u))}},t}},17(e){e.exports=function(e){return e[1]}},10(e){var t=[];function r(e){for(var r=-1,n=0;n<t.length;n++)if(t[n].identifier===e){r=n;break}return r}function n(e,n){for(var o={},a=[],i=0;i<e.length;i++){var c=e[i],s=n.base?c[0]+n.base:c[0],p=o[s]||0,u="".concat(s," ").concat(p);o[s]=p+1;var l=r(u),d={css:c[1],media:c[2],sourceMap:c[3],supports:c[4],layer:c[5]};if(-1!==l)t[l].references++,t[l].updater(d);else{var f=function(e,t){var r=t.domAPI(t);return r.update(e),function(t){t?(t.css!==e.css||t.media!==e.media||t.sourceMap!==e.sourceMap||t.supports!==e.supports||t.layer!==e.layer)&&r.update(e=t):r.remove()}}(d,n);n.byIndex=i,t.splice(i,0,{identifier:u,updater:f,references:1})}a.push(u)}return a}e.exports=function(e,o){var a=n(e=e||[],o=o||{});return function(e){e=e||[];for(var i=0;i<a.length;i++){var c=r(a[i]);t[c].references--}for(var s=n(e,o),p=0;p<a.length;p++){var u=r(a[p]);0===t[u].references&&(t[u].updater(),t.splice(u,1))}a=s}}},12(e){var t={};e.exports=function(e,r){var n=function(e){if(void 0===t[e]){var r=document.querySelector(e);if(window.HTMLIFrameElement&&r instanceof window.HTMLIFrameElement)try{r=r.contentDocument.head}catch(e){r=null}t[e]=r}return t[e]}(e);if(!n)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");n.appendChild(r)}},14(e){e.exports=function(e){var t=document.createElement("style");return e.setAttributes(t,e.attributes),e.insert(t,e.options),t}},13(e,t,r){e.exports=function(e){var t=r.nc;t&&e.setAttribute("nonce",t)}},11(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var t=e.insertStyleElement(e);return{update:function(r){var n,o,a;n="",r.supports&&(n+="@supports (".concat(r.supports,") {")),r.media&&(n+="@media ".concat(r.media," {")),(o=void 0!==r.layer)&&(n+="@layer".concat(r.layer.length>0?" ".concat(r.layer):""," {")),n+=r.css,o&&(n+="}"),r.media&&(n+="}"),r.supports&&(n+="}"),(a=r.sourceMap)&&"u">typeof btoa&&(n+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(n,t,e.options)},remove:function(){var e;null===(e=t).parentNode||e.parentNode.removeChild(e)}}}},15(e){e.exports=function(e,t){if(t.styleSheet)t.styleSheet.cssText=e;else{for(;t.firstChild;)t.removeChild(t.firstChild);t.appendChild(document.createTextNode(e))}}},9(e,t,r){var n=r(10),o=r.n(n),a=r(11),i=r.n(a),c=r(12),s=r.n(c),p=r(13),u=r.n(p),l=r(14),d=r.n(l),f=r(15),h=r.n(f),v=r(16),m={};m.styleTagTransform=h(),m.setAttributes=u(),m.insert=s().bind(null,"head"),m.domAPI=i(),m.insertStyleElement=d(),o()(v.A,m),v.A&&v.A.locals&&v.A.locals}}]);