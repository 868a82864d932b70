# Sphinx configuration of the idmapguard.storage reference site (`make docs`).
# Generated once with `antsibull-docs sphinx-init`, then made to build offline: the build
# machines have no internet, so there is no intersphinx; references into docs.ansible.com
# (e.g. the environment-variable index's link to the configuration settings) cannot resolve
# and ref warnings are suppressed. `make test-docs` runs `antsibull-docs lint-collection-docs`
# first, which checks the collection's own cross-references.

project = 'idmapguard.storage'
copyright = 'idmapguard developers'

title = 'idmapguard.storage reference'
html_short_title = 'idmapguard.storage'

extensions = ['sphinx.ext.autodoc', 'sphinx_antsibull_ext']

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
display_version = False

html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = 'any'
nitpicky = False
suppress_warnings = ['ref.ref']
