"""jaxsim: a GPU-accelerated, differentiable simulator of large populations on JAX.

Main pieces:

- :mod:`jaxsim.population`, :mod:`jaxsim.population_io`, :mod:`jaxsim.synthetic`: agents,
  their labelled attributes and contact networks (files or synthetic NYC neighbourhoods);
- :mod:`jaxsim.engine`: models as ordered substeps, ``simulate`` (one ``lax.scan``) and
  ``run`` (chunks, progress, timing);
- :mod:`jaxsim.kernels`: the transition kernels;
- :mod:`jaxsim.covid`: the COVID-19 SEIRM + isolation model.
"""

__version__ = "0.1.0"
