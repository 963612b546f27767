// xterm.js under the page's Content-Security-Policy (default-src 'self': no inline style).
//
// xterm's DOM renderer and viewport write their rules into <style> elements it creates, and the
// colours of 24-bit ("truecolor") text into style attributes of the row's <span>s. The policy
// blocks both (and the browser logs a violation for each). The terminal gets instead:
// - a document (xterm's own `documentOverride` option) whose createElement("style") makes a
//   hidden <vsh-style> element; the text xterm sets on it goes into a constructed style sheet
//   adopted by the page (constructed sheets are not inline style). xterm 6.0's viewport takes
//   the page's document whatever the option says, so while the terminal opens (when the viewport
//   makes its <style>) document.createElement makes the same stand-ins;
// - span style attributes set through the CSSOM (`el.style.cssText`), which the policy allows;
//   the page itself never sets a style attribute.

let spansPatched = false;

function patchSpanStyleAttributes() {
    if (spansPatched) return;
    spansPatched = true;
    const setAttribute = Element.prototype.setAttribute;
    HTMLSpanElement.prototype.setAttribute = function (name, value) {
        if (String(name).toLowerCase() === "style") this.style.cssText = String(value);
        else setAttribute.call(this, name, value);
    };
}

// → {document, open, dispose}: pass `document` as xterm's documentOverride, open the terminal
// with open(term, element) instead of term.open(element); dispose() after the terminal's own
// dispose() drops the style sheets it made.
export function terminalDocument() {
    patchSpanStyleAttributes();
    const sheets = new Set();
    const drop = (sheet) => {
        sheets.delete(sheet);
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
    };
    const styleStandIn = () => {
        const el = make.call(document, "vsh-style");
        el.hidden = true;
        const sheet = new CSSStyleSheet();
        sheets.add(sheet);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
        let text = "";
        Object.defineProperty(el, "textContent", {
            get: () => text,
            set: (value) => { text = String(value ?? ""); sheet.replaceSync(text); },
        });
        el.remove = () => { Element.prototype.remove.call(el); drop(sheet); };
        return el;
    };
    const make = Document.prototype.createElement;
    const createElement = (tag, options) =>
        String(tag).toLowerCase() === "style" ? styleStandIn() : make.call(document, tag, options);
    const bound = new Map();
    const proxy = new Proxy(document, {
        get(target, prop) {
            if (prop === "createElement") return createElement;
            const value = Reflect.get(target, prop, target);
            if (typeof value !== "function") return value;
            if (!bound.has(prop)) bound.set(prop, value.bind(target));
            return bound.get(prop);
        },
    });
    const open = (term, element) => {
        document.createElement = createElement;
        try {
            term.open(element);
        } finally {
            delete document.createElement;          // the prototype's again
        }
    };
    return {document: proxy, open, dispose: () => { for (const sheet of [...sheets]) drop(sheet); }};
}
