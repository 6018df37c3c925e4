-- Quarto's cross-references, figures and callouts for the fallback renderer (pandoc Lua filter).
--
-- The renderer numbers every figure, table, equation and section of the book in Python and passes
-- the table as JSON (metadata `skinmap-xref`: a file path; `skinmap-page`: this page). This filter
--   * turns `@fig-x`, `[@tbl-x]`, `[-@eq-x]`, `@sec-x` (pandoc Cite elements whose ids carry a
--     cross-reference prefix) into links reading "Figure 3.2", "Section 3.1", "Chapter 3" (or
--     "3.2" with `-@`), across pages;
--     an unknown label reads "?@fig-x" in bold, as in Quarto, and is reported on stderr;
--   * turns the renderer's `.skinmap-figure` divs into pandoc Figures (<figure>/<figcaption>);
--   * gives `.callout-*` divs Quarto's header (the first heading, a `title` attribute, or the kind).
-- It runs before citeproc, so the remaining Cite elements are bibliography citations.

local registry = {}
local page = ""
local CALLOUTS = { note = "Note", warning = "Warning", important = "Important", tip = "Tip", caution = "Caution" }

local function xref_kind(id)
  return id:match("^(fig)%-") or id:match("^(tbl)%-") or id:match("^(eq)%-") or id:match("^(sec)%-")
end

local function read_meta(meta)
  local path = meta["skinmap-xref"] and pandoc.utils.stringify(meta["skinmap-xref"]) or nil
  page = meta["skinmap-page"] and pandoc.utils.stringify(meta["skinmap-page"]) or ""
  if path then
    local fh = io.open(path, "r")
    if fh then
      registry = pandoc.json.decode(fh:read("a"), false)
      fh:close()
    end
  end
end

local function cite(el)
  for _, c in ipairs(el.citations) do
    if not xref_kind(c.id) then return nil end -- a bibliography citation: citeproc's
  end
  local out = pandoc.List()
  for i, c in ipairs(el.citations) do
    if i > 1 then out:insert(pandoc.Str(",")); out:insert(pandoc.Space()) end
    if #c.prefix > 0 then out:extend(c.prefix); out:insert(pandoc.Space()) end
    local t = registry[c.id]
    if t then
      local text = t.text  -- "Figure 3.2", "Chapter 3", or an unnumbered section's title
      if c.mode == "SuppressAuthor" and t.number ~= "" then text = t.number end
      local href = (t.page == page and "" or t.page) .. "#" .. c.id
      out:insert(pandoc.Link(pandoc.Inlines(text), href, "", pandoc.Attr("", { "quarto-xref" })))
    else
      io.stderr:write("WARNING: unresolved cross-reference @" .. c.id .. " on " .. page .. "\n")
      out:insert(pandoc.Span(pandoc.Strong(pandoc.Str("?@" .. c.id)), pandoc.Attr("", { "quarto-unresolved-ref" })))
    end
    if #c.suffix > 0 then out:extend(c.suffix) end
  end
  return out
end

local function div(el)
  if el.classes:includes("skinmap-figure") then
    local caption, body = nil, pandoc.Blocks({})
    for _, b in ipairs(el.content) do
      if b.t == "Div" and b.classes:includes("skinmap-caption") then caption = b.content else body:insert(b) end
    end
    local fig = pandoc.Figure(body, { long = caption or pandoc.Blocks({}) }, el.attr)
    return fig
  end
  for _, cls in ipairs(el.classes) do
    local kind = cls:match("^callout%-(%a+)$")
    if kind and CALLOUTS[kind] then
      local title = el.attributes["title"] and pandoc.Inlines(el.attributes["title"]) or nil
      local content = el.content
      if not title and #content > 0 and content[1].t == "Header" then
        title = content[1].content
        content = pandoc.Blocks({ table.unpack(content, 2) })
      end
      title = title or pandoc.Inlines(CALLOUTS[kind])
      local header = pandoc.Div(pandoc.Plain(title), pandoc.Attr("", { "callout-header" }))
      local body = pandoc.Div(content, pandoc.Attr("", { "callout-body" }))
      return pandoc.Div({ header, body }, pandoc.Attr(el.identifier, { "callout", "callout-" .. kind }))
    end
  end
  return nil
end

return {
  { Meta = function(meta) read_meta(meta) end },
  { Cite = cite, Div = div },
}
