"""The labour model: a regional labour market and household economy on the jaxsim core.

Workers in regions (e.g. New York City's boroughs) are willing to work or not each month
(a heuristic or a language model through the behaviour layer), work on working days when
employed, willing and available, earn, pay a progressive tax that is redistributed, receive
UI benefits, pensions and stimulus payments, consume and save; each region's labour market
moves them between jobs monthly. It runs alone, or composed with an epidemic model whose
``alive``, ``available`` and ``onset_day`` it reads through declared bridges::

    from jaxsim import coupling
    from jaxsim.models import covid, labour
    model = coupling.compose({"covid": covid.covid_model(), "economy": labour.labour_model()})

Modules: :mod:`.params` (defaults cited), :mod:`.agents` (labour force, occupations, wages,
the calendar, the world), :mod:`.model` (state, substeps, the model), :mod:`.behaviour`
(willingness from a language model), :mod:`.calibration` (the labour-market fit on the
expected flows), :mod:`.report`.
"""

from jaxsim.models.labour.agents import (
    LabourAttributes,
    build_world,
    calendar_of_day,
    civil_date,
    days_in_months,
    epoch_day,
    labour_attributes,
    occupations_from_soc,
    work_group_share,
)
from jaxsim.models.labour.behaviour import WILLINGNESS_POLICY, MonthlySignals, work_template
from jaxsim.models.labour.model import (
    CITY_METRICS,
    METRICS,
    OUTCOMES,
    REGION_METRICS,
    LabourState,
    initial_state,
    labour_model,
    monthly_rows,
    willingness_probability,
)
from jaxsim.models.labour.params import (
    DEFAULT_OCCUPATION_SHARES,
    DEFAULT_PARTICIPATION,
    OCCUPATIONS,
    EconomyError,
    LabourParams,
    StimulusPayment,
    check_stimulus,
    default_params,
    describe_stimulus,
    no_stimulus,
    stimulus_payment,
    validate_params,
)
from jaxsim.models.labour.report import params_report

__all__ = [
    "CITY_METRICS", "DEFAULT_OCCUPATION_SHARES", "DEFAULT_PARTICIPATION", "EconomyError", "LabourAttributes",
    "LabourParams", "LabourState", "METRICS", "MonthlySignals", "OCCUPATIONS", "OUTCOMES", "REGION_METRICS",
    "StimulusPayment", "WILLINGNESS_POLICY", "build_world", "calendar_of_day", "check_stimulus", "civil_date",
    "days_in_months", "default_params", "describe_stimulus", "epoch_day", "initial_state", "labour_attributes",
    "labour_model", "monthly_rows", "no_stimulus", "occupations_from_soc", "params_report", "stimulus_payment",
    "validate_params", "willingness_probability", "work_group_share", "work_template",
]
