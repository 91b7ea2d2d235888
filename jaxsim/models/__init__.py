"""The model library: each model a small package on the public jaxsim core.

- :mod:`jaxsim.models.sir`: SIR/SEIR on a contact network;
- :mod:`jaxsim.models.opinion`: bounded-confidence opinion dynamics (Deffuant);
- :mod:`jaxsim.models.schelling`: Schelling's segregation on a 2-D grid;
- :mod:`jaxsim.models.covid`: COVID-19 SEIRM with isolation behaviour and interventions;
- :mod:`jaxsim.models.labour`: a regional labour market and household economy, coupled to
  an epidemic through declared bridges.

Each package owns its state, parameters (defaults cited, bounds, units), initial state,
substeps, observations, validation and reports; nothing in the core imports them.
"""
